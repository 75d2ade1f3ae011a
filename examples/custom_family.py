"""Tell foveate about a model family: its zoom wording and thresholds, what it can do, how it counts tokens.

    .venv/bin/python examples/custom_family.py

A ``Family`` is every fact foveate needs about an architecture: which ``model_type`` values it covers, how
its processor turns an image into visual tokens, which pruning runs on it, whether probes can share a
cached prefix, how its attention lays out as a grid, whether it writes free text, and the wording of the
zoom search's probes. Here a fine-tuned Qwen2.5-VL checkpoint answers the probes best in its own wording
and is surer of itself than the base model, so it gets its own family, built on Qwen2.5-VL's facts.

It is registered on a copy of the built-in registry, or named in the model folder's ``config.json``
(``"foveate_family": "..."``), and a server's model is declared by name. Nothing here touches foveate's own
files. Offline: the "checkpoint" is a tiny random Qwen2.5-VL built from a config (answers are noise; every
code path is real).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

from foveate.testing.tiny_models import build_tiny_qwen25vl
from foveate.vlm import ZoomPrompts, builtin_families, load_vlm
from foveate.vlm.families import qwen2_5_vl
from foveate.vlm.openai_vlm import OpenAIVLM
from foveate.zoom import ZoomAgent, ZoomConfig

# A fine-tune of Qwen2.5-VL: the same architecture, token arithmetic, FastV pruning and attention grid;
# its own probe wording, a lower stop threshold (its "Yes" is calibrated, not over-confident), and it does
# not write lessons a workflow should store.
MY_QWEN = replace(
    qwen2_5_vl.FAMILY,
    name="my-qwen-finetune",
    model_types=(),  # chosen by name or by the folder's config, never for every Qwen2.5-VL
    writes=False,
    zoom=ZoomPrompts(
        existence="Does this crop show a {o}? Reply Yes or No.",
        latent="Might a {o} appear if we zoom into this crop? Reply Yes or No.",
        answering="{q}\nIs this crop enough to answer? Reply Yes or No.",
        cue_answering="Does this crop show a {o} clearly? Reply Yes or No.",
        bias=0.6,
        answer_threshold=0.8,
    ),
)


def main() -> None:
    folder = build_tiny_qwen25vl(Path(tempfile.mkdtemp(prefix="foveate-family-")) / "my-qwen")
    families = builtin_families()  # a fresh registry: yours to extend
    families.register(MY_QWEN)

    base = load_vlm(folder)  # by model_type: the built-in Qwen2.5-VL family
    mine = load_vlm(folder, family="my-qwen-finetune", families=families)  # by name
    for label, vlm in (("model_type", base), ("named", mine)):
        p = vlm.profile
        print(
            f"{label}: family {p.family}, native side {p.native_side} px, "
            f"{p.view_tokens(p.native_side)} visual tokens per view, pruning {list(p.prune_methods)}, "
            f"prefix reuse {p.prefix_reuse}, relevance maps {p.relevance_maps}, writes {p.writes}, "
            f"stop threshold {p.zoom.answer_threshold}"
        )

    # the folder can say it itself: any copy of it, anywhere, gets the family
    config = json.loads((folder / "config.json").read_text())
    config["foveate_family"] = MY_QWEN.name
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    print(f"from its config: family {load_vlm(folder, families=families).profile.family}")

    agent = ZoomAgent(mine, ZoomConfig(strategy="fast"))
    print(f"zoom probes ask: {agent.prompts.existence.format(o='red car')!r}")

    # a served model is declared by name (no connection is made until the first call)
    served = OpenAIVLM("http://127.0.0.1:9/v1", model="my-qwen", family="my-qwen-finetune", families=families)
    rule = type(served.profile.token_rule).__name__
    print(
        f"served: family {served.profile.family}, reference token rule {rule}, "
        f"relevance maps {served.profile.relevance_maps} (a server shows no attention)"
    )


if __name__ == "__main__":
    main()

"""``python -m benchmarks.zoom --probe-options``: every search, the ablations too, asks its stop probe with
the question's options in the wording ``train --probe-options`` teaches, and the page's command says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.zoom import ABLATIONS, MAIN, asking_with_options, main, prompt_update, with_prompts
from foveate.tiny_vlm import tiny_vlm_available
from foveate.tiny_vlm.tasks import OPTION_CUE, OPTIONS_LINE
from foveate.vlm.families.foveate_tiny import FAMILY


def test_every_config_keeps_its_own_prompts_and_asks_with_the_options() -> None:
    configs = {**MAIN, **ABLATIONS}
    asked = asking_with_options(configs, FAMILY.zoom)
    assert asked.keys() == configs.keys()
    for name, config in configs.items():
        own = (config.prompts or FAMILY.zoom).model_dump()
        now = asked[name].prompts
        assert now is not None and now.answering_options == OPTIONS_LINE
        assert {k: v for k, v in now.model_dump().items() if k != "answering_options"} == {
            k: v for k, v in own.items() if k != "answering_options"
        }, name
        assert asked[name].model_copy(update={"prompts": config.prompts}) == config
    assert any(c.prompts is not None for c in ABLATIONS.values())  # some ablations change the prompts


@pytest.mark.skipif(not tiny_vlm_available(), reason="needs the shipped weights")
def test_the_page_names_the_option_it_was_made_with(tmp_path: Path) -> None:
    out = tmp_path / "zoom.md"
    argv = ["--n", "1", "--seeds", "7", "--tuning", "--distributions", "default", "--worlds", "hard"]
    flags = ["--probe-options", "--option-cues", "--narrow-cues"]
    main([*argv, "--strategies", "direct", "--n-ablation", "0", *flags, "--out", str(out)])
    head = out.read_text().splitlines()[2]
    assert all(flag in head for flag in flags) and head.startswith(
        "Produced by `python -m benchmarks.zoom --n 1"
    )


def test_with_prompts_sets_the_fields_on_every_configs_own_prompts() -> None:
    configs = {**MAIN, **ABLATIONS}
    update = {"answering_options": OPTIONS_LINE, "option_cue": OPTION_CUE, "narrow_cues": True}
    changed = with_prompts(configs, FAMILY.zoom, update)
    for name, config in configs.items():
        now = changed[name].prompts
        assert now is not None
        assert now.model_dump() == {**(config.prompts or FAMILY.zoom).model_dump(), **update}, name


def test_each_flag_sets_its_own_field() -> None:
    assert prompt_update(False, False, False) == {}
    assert prompt_update(True, False, False) == {"answering_options": OPTIONS_LINE}
    assert prompt_update(False, True, False) == {"option_cue": OPTION_CUE}
    assert prompt_update(False, False, True) == {"narrow_cues": True}
    assert len(prompt_update(True, True, True)) == 3

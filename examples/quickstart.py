"""Quick start: ask the default agent a question about a large image, then tell it how it did.

    .venv/bin/python examples/quickstart.py

Runs offline on the embedded tiny VLM (a 128-pixel LLaVA-architecture model shipped in the package) with
the built-in ``full`` workflow: perceive, recall, zoom, reason, judge, abstain, remember. The insight
memory goes to ``$FOVEATE_MEMORY_DB``; when that is not set, this script uses a temporary folder so that
trying it leaves nothing in ``~/.foveate``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import foveate
from foveate.synthetic import generate_scene


def main() -> None:
    scratch = tempfile.TemporaryDirectory(prefix="foveate-quickstart-")
    os.environ.setdefault("FOVEATE_MEMORY_DB", str(Path(scratch.name) / "memory.db"))

    # A 1536-2048 px synthetic scene: grey clutter and one small coloured target. Use your own image
    # instead: image="photo.png" (a path, a PIL image, a numpy array or bytes).
    image, item = generate_scene(seed=7, index=0)
    print(f"image: {image.width}x{image.height}  question: {item.question}  options: {item.options}")

    # The embedded tiny VLM on CPU, memory at $FOVEATE_MEMORY_DB, workflow "full".
    with foveate.Agent.from_defaults() as agent:
        answer = agent.ask(item.question, image=image, options=item.options)

        print(f"answer: {answer.text}")  # None when it abstained
        print(f"confidence: {answer.confidence:.3f}")  # the chosen option's probability
        print(f"abstained: {answer.abstained} {answer.reason}".rstrip())
        t = answer.tokens
        print(
            f"tokens: {t.visual_tokens} visual + {t.text_tokens} text + {t.generated_tokens} generated "
            f"({t.forward_passes} forward passes, {answer.probes} zoom probes, {answer.latency_s:.1f} s)"
        )
        print("trace:")
        for step in answer.trace:  # "node: what it did", in order
            print(f"  {step}")

        # Say what the right answer was: the run is recorded in the insight memory, lessons are
        # written from it, and (with a calibration loaded) the coverage monitor is updated.
        agent.feedback(answer.run_id, answer=item.answer)
        assert agent.memory is not None
        print(f"feedback: the right answer is {item.answer!r}; memory now holds {len(agent.memory)} insights")
        print(f"run id: {answer.run_id}  memory: {os.environ['FOVEATE_MEMORY_DB']}")
    scratch.cleanup()


if __name__ == "__main__":
    main()

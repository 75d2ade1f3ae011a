"""A prompt longer than the model's context window is refused before any forward pass, and generation is
capped at the room the window leaves (issue 25: a 100 KB question ran through the tiny VLM's 4,096-token
window and was answered, charging 49,632 tokens)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from foveate import Agent
from foveate.cli.main import app
from foveate.errors import ContextLengthError
from foveate.vlm.budget import TokenBudget, TokenLedger
from foveate.vlm.transformers_vlm import TransformersVLM
from foveate.vlm.types import VLMRequest

PICTURE = Image.fromarray(np.full((64, 64, 3), 128, dtype=np.uint8))
# 100 KB of words, as the probe sent: about 25k tokens for the tiny VLM's tokenizer.
LONG = "Is the small red square left of the blue circle? " * 2100


def test_the_window_comes_from_the_models_config(vlm: TransformersVLM) -> None:
    assert vlm.profile.context_length == 4096
    assert vlm.window == (4096, "text_config.max_position_embeddings")


@pytest.mark.parametrize("operation", ["generate", "score", "yes_probability", "probe_views"])
def test_a_prompt_past_the_window_is_refused_before_any_forward_pass(
    vlm: TransformersVLM, operation: str
) -> None:
    ledger = TokenLedger(TokenBudget())
    request = VLMRequest.from_prompt(LONG, images=[PICTURE])
    said = r"reads at most 4,096 \(text_config.max_position_embeddings"
    with pytest.raises(ContextLengthError, match=said):
        if operation == "generate":
            vlm.generate(request, ledger)
        elif operation == "score":
            vlm.score(request, ["yes", "no"], ledger)
        elif operation == "yes_probability":
            vlm.yes_probability(request, ledger)
        else:
            vlm.probe_views([PICTURE], [[LONG, "Is it red?"]], ledger)
    assert ledger.spent.total == 0


def test_generation_is_capped_at_the_room_the_window_leaves(vlm: TransformersVLM) -> None:
    """A prompt that fits, asking for more new tokens than the window has room for: generation holds (and
    may spend) only the room. A budget of exactly the window is then enough; holding the whole ask (the
    behaviour before) would not fit it."""
    prompt = "Describe the picture. " + "red " * 3600
    request = VLMRequest.from_prompt(prompt, images=[PICTURE], max_new_tokens=2000)
    ledger = TokenLedger(TokenBudget(max_total_tokens=4096))
    result = vlm.generate(request, ledger)
    assert result.usage.total <= 4096
    assert ledger.spent.total == result.usage.total


def test_the_agent_and_the_command_line_refuse_in_one_line(
    vlm: TransformersVLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = Agent(vlm, workflow="direct", memory=None, checkpoints=None)
    with pytest.raises(ContextLengthError, match="4,096"):
        agent.ask(LONG, image=PICTURE, options=["left", "right"])
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("FOVEATE_CONFIG", str(tmp_path / "none.toml"))
    picture = tmp_path / "p.png"
    PICTURE.save(picture)
    result = CliRunner().invoke(app, ["run", str(picture), LONG, "--workflow", "direct", "--no-memory"])
    assert result.exit_code == 2, result.output
    assert "reads at most 4,096" in result.output and "Traceback" not in result.output
    assert result.stderr.strip().count("\n") == 0  # stdout has the run id, printed before the run starts


def test_one_long_prompt_does_not_fail_the_questions_merged_with_it(vlm: TransformersVLM) -> None:
    """Coalesced probes from several questions run as one batch; a prompt past the window in it is refused
    for its own question only (the batch is asked again job by job)."""
    import threading

    from foveate.vlm.batching import CoalescingVLM

    outcomes: dict[str, object] = {}
    with CoalescingVLM(vlm, max_wait_s=0.5) as shared:
        start = threading.Barrier(2)

        def ask(name: str, question: str) -> None:
            start.wait()
            try:
                outcomes[name] = shared.probe_views([PICTURE], [[question]])
            except ContextLengthError as exc:
                outcomes[name] = exc

        threads = [
            threading.Thread(target=ask, args=("long", LONG)),
            threading.Thread(target=ask, args=("short", "Is the picture grey?")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert isinstance(outcomes["long"], ContextLengthError)
    assert isinstance(outcomes["short"], list) and 0.0 <= outcomes["short"][0][0].p_yes <= 1.0

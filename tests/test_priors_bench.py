"""The priors benchmark refuses, before loading any model, seeds that chose something and worlds it does not
know: its page must report on seeds that chose nothing (docs/benchmarks/zoom-notes.md, sessions 12-13)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from benchmarks.priors import SPENT_SEEDS, TUNING_SEEDS, main, search_config
from benchmarks.zoom import add_prompt_options, prompt_options_command
from foveate.tiny_vlm.tasks import OPTION_CUE, OPTIONS_LINE
from foveate.vlm.families.foveate_tiny import FAMILY


def _guarded(tmp_path: Path, *argv: str) -> list[str]:
    """``argv`` with a model folder that does not exist and a page in ``tmp_path``: should the refusal fail,
    the run stops at loading the model instead of running the benchmark over the committed page."""
    return [*argv, "--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "priors.md"), "--n", "1"]


@pytest.mark.parametrize("seed", [*TUNING_SEEDS, *SPENT_SEEDS])
@pytest.mark.parametrize("flag", ["--feed-seed", "--test-seed"])
def test_seeds_that_chose_something_are_refused_without_tuning(
    flag: str, seed: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(_guarded(tmp_path, flag, str(seed)))
    assert exit_info.value.code == 2
    assert "pass --tuning to use them" in capsys.readouterr().err


def test_an_unknown_world_is_named_in_the_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(_guarded(tmp_path, "--worlds", "plain,marsh"))
    assert "marsh" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value", "named"),
    [
        ("--cases", "default:marsh", "default:marsh"),
        ("--cases", "default", "'default'"),
        ("--strategies", "zoomeye,dfs", "dfs"),
    ],
)
def test_unknown_cases_and_strategies_are_named_before_any_model_loads(
    flag: str, value: str, named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(_guarded(tmp_path, flag, value))
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err


def _args(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_prompt_options(parser)
    return parser.parse_args(list(flags))


def test_prompt_flags_reach_the_search_and_the_pages_command() -> None:
    """A candidate trained for option cues is read by the priors benchmark as the zoom benchmark reads it:
    the flags change the model's own prompts (nothing else) and the page's command names them."""
    plain = search_config(FAMILY.zoom, "fast", _args())
    assert plain.prompts is None and plain.strategy == "fast"
    flags = ["--probe-options", "--option-cues", "--narrow-cues"]
    config = search_config(FAMILY.zoom, "zoomeye", _args(*flags))
    assert config.strategy == "zoomeye" and config.prompts is not None
    changed = {"answering_options": OPTIONS_LINE, "option_cue": OPTION_CUE, "narrow_cues": True}
    assert config.prompts.model_dump() == {**FAMILY.zoom.model_dump(), **changed}
    assert prompt_options_command(_args(*flags)) == " " + " ".join(flags)
    assert prompt_options_command(_args("--option-cues")) == " --option-cues"

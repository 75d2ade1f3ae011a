"""The priors benchmark refuses, before loading any model, seeds that chose something and worlds it does not
know: its page must report on seeds that chose nothing (docs/benchmarks/zoom-notes.md, sessions 12-13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.priors import SPENT_SEEDS, TUNING_SEEDS, main


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

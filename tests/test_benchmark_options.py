"""Every benchmark page takes ``--worlds`` through one helper: a bad value is a usage error that names it,
raised while the arguments are parsed (before any model loads or any page is written)."""

from __future__ import annotations

import argparse

import pytest

from benchmarks import DEFAULT_WORLDS, add_worlds_option, worlds_option
from foveate.synthetic import HARD, PLAIN


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench")
    add_worlds_option(parser)
    return parser


def test_the_default_is_both_worlds_in_order_and_adds_nothing_to_the_command() -> None:
    worlds = _parser().parse_args([]).worlds
    assert worlds == [PLAIN, HARD]
    assert worlds_option(worlds) == ""
    assert DEFAULT_WORLDS == "plain,hard"


def test_a_value_names_its_worlds_in_its_order() -> None:
    worlds = _parser().parse_args(["--worlds", " hard , plain "]).worlds
    assert worlds == [HARD, PLAIN]
    assert worlds_option(worlds) == " --worlds hard,plain"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("plain,marsh", "unknown world 'marsh'; known: plain, hard"),
        (" , ", "names no world"),
        ("hard,hard", "twice"),
    ],
)
def test_a_bad_value_is_a_usage_error_that_says_why(
    value: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(["--worlds", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --worlds" in err
    assert reason in err

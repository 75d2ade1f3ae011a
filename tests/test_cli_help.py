"""Every command documents itself, and wrong usage is one line on stderr with a non-zero exit."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from foveate.cli.main import app

runner = CliRunner()
FOVEATE = [sys.executable, "-c", "from foveate.cli.main import main; main()"]


def walk(command: object, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    found = [(path, command)]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found += walk(sub, (*path, name))
    return found


COMMANDS = walk(typer.main.get_command(app))


def test_there_are_commands_to_check() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"call", "run", "demo", "calibrate", "chat", "memory ls", "graph show", "bench make"} <= names
    assert "ask" not in names  # `foveate call` is one model call; workflows answer through `run`


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "foveate")
def test_every_command_and_option_has_help(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    command = dict(COMMANDS)[path]
    assert (getattr(command, "help", None) or "").strip(), f"{' '.join(path)} has no description"
    for param in getattr(command, "params", []):
        if param.name == "help":
            continue
        assert (getattr(param, "help", None) or "").strip(), f"{' '.join(path)}: {param.name} has no help"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["run", "--bogus"], "No such option: --bogus"),
        (["call"], "Missing argument"),
        (["nosuch"], "No such command"),
        (["memory", "ls", "--limit", "many"], "'--limit'"),
        (
            ["run", "missing.png", "What is it?", "--no-memory", "--workflow", "direct"],
            "image file not found",
        ),
    ],
)
def test_wrong_usage_is_one_line_without_a_traceback(args: list[str], says: str, tmp_path: Path) -> None:
    env = dict(os.environ, HOME=str(tmp_path), FOVEATE_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [*FOVEATE, *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    errors = [line for line in proc.stderr.splitlines() if line.strip() and "Loading weights" not in line]
    assert proc.returncode != 0
    assert len(errors) == 1 and errors[0].startswith("error:") and says in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_a_bad_setting_in_the_config_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("max_total_tokens = -5\n")
    env = dict(os.environ, HOME=str(tmp_path), FOVEATE_CONFIG=str(config), HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [*FOVEATE, "run", "x.png", "q?"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert proc.returncode == 2 and "max_total_tokens" in proc.stderr and str(config) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_defaults_written_in_help_strings_are_shown() -> None:
    """Rich markup read "[default: ...]" in a help string as a tag and dropped it ("a SQLAlchemy URL .")."""
    shown = runner.invoke(app, ["memory", "ls", "--help"], terminal_width=120).output
    assert "[default:" in shown and "memory.db]" in shown


def _options(command: object) -> list[object]:
    return [
        p for p in getattr(command, "params", []) if type(p).__name__.endswith("Option") and not p.is_eager
    ]  # --help, --version


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "foveate")
def test_help_shows_every_option_whole_and_its_default(path: tuple[str, ...], width: int) -> None:
    """Rich's panels cut "--allow-calibration-mismatch" to "--allow-calibratio…" at 80 columns and dropped
    the defaults written in help strings; every option that is not required says its default."""
    shown = runner.invoke(app, [*path, "--help"], terminal_width=width).output
    assert all(len(line) <= width for line in shown.splitlines()), shown
    for option in _options(dict(COMMANDS)[path]):
        for name in [*option.opts, *option.secondary_opts]:  # type: ignore[attr-defined]
            assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", shown), f"{name} cut in:\n{shown}"
    # each option's own help line(s), as click lays them out: "default" in every one that has a default
    ctx = typer.main.get_command(app).context_class(dict(COMMANDS)[path])  # type: ignore[attr-defined]
    for option in _options(dict(COMMANDS)[path]):
        record = option.get_help_record(ctx)  # type: ignore[attr-defined]
        if not option.required:  # type: ignore[attr-defined]
            assert "[default:" in record[1], f"{' '.join(path)} {record[0]}: {record[1]}"


def test_run_help_has_a_default_line_per_option_with_a_default() -> None:
    """The issue's check, as a user runs it: `foveate run --help | grep -c default`."""
    env = dict(os.environ, COLUMNS="80")
    proc = subprocess.run([*FOVEATE, "run", "--help"], capture_output=True, text=True, env=env, timeout=120)
    options = [o for o in _options(dict(COMMANDS)[("run",)]) if not o.required]  # type: ignore[attr-defined]
    assert proc.returncode == 0 and len(options) >= 20
    assert sum("default" in line for line in proc.stdout.splitlines()) == len(options), proc.stdout

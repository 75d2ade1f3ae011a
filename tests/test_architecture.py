"""The house keeps its shape: cheap imports, no capability guessing, small modules, layers that hold.

The layers themselves are checked by ``lint-imports`` in ``make test`` (contracts in pyproject.toml, the
picture in docs/architecture.md); these are the rules it cannot express.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "foveate"
HEAVY = ("torch", "langgraph", "faiss", "transformers", "sqlalchemy")


@pytest.mark.parametrize("module", ["foveate", "foveate.vlm", "foveate.zoom", "foveate.conformal"])
def test_light_imports_stay_light(module: str) -> None:
    """``import foveate`` (the CLI's first step) and ``import foveate.vlm`` (request models, a server
    backend) load no deep-learning, graph or vector library; nor do zoom search and conformal prediction."""
    code = f"import sys, {module}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "", f"import {module} loaded {out.stdout.strip()}"


def test_no_capability_is_guessed_from_a_missing_attribute() -> None:
    """What a model can do is declared in its profile (``vlm.profile``), never probed with getattr."""
    guesses = [
        f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
        for path in PACKAGE.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"getattr\([^,]*vlm", line)
    ]
    assert guesses == []


def test_no_module_is_over_about_450_lines() -> None:
    too_long = {
        str(path.relative_to(PACKAGE.parent)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 460
    }
    assert too_long == {}, "split these by what they do (docs/architecture.md)"


def test_production_code_never_names_test_support() -> None:
    """Belt and braces for the import-linter contract: not even a lazy import inside a function, or a
    module name handed to importlib (docstrings may point users to it)."""
    pattern = re.compile(
        r"^\s*(from|import)\s+foveate\.testing|import_module\(\s*[\"']foveate\.testing", re.M
    )
    offenders = [
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if "testing" not in path.relative_to(PACKAGE).parts and pattern.search(path.read_text())
    ]
    assert offenders == []

"""Gates a model folder ships beside its weights (``foveate_gates.json``), so that it gates out of the box.

The file is a JSON list of ``AnswerGate`` (``AnswerGate.to_json``), one per workflow, alpha and method it
was calibrated for; ``foveate calibrate --ship`` writes into it, replacing a gate with the same key, alpha
and method. The folder's fingerprint (``foveate.vlm.fingerprint``) leaves this file out, so writing a gate
does not change the key it was made for.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from foveate.conformal.answer_gate import AnswerGate, GateKey
from foveate.errors import CalibrationStoreError

__all__ = ["GATES_FILE", "pick_gate", "read_gates", "shipped_gate", "write_gates"]

log = logging.getLogger(__name__)

GATES_FILE = "foveate_gates.json"


def read_gates(folder: str | os.PathLike[str]) -> list[AnswerGate]:
    """The gates shipped in ``folder`` (empty when it ships none); an error naming the file if it is bad."""
    path = Path(folder) / GATES_FILE
    if not path.is_file():
        return []
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
        return [AnswerGate.model_validate(item) for item in items]
    except (OSError, ValueError, TypeError) as exc:
        raise CalibrationStoreError(f"cannot read the shipped gates {path}: {exc}") from None


def write_gates(folder: str | os.PathLike[str], gates: list[AnswerGate]) -> Path:
    """Add ``gates`` to the folder's file (a gate with the same key, alpha and method is replaced, and so is
    every gate made for other weights: the folder holds only the new ones, whose fingerprint no gate for
    the old could match again); written atomically."""
    path = Path(folder) / GATES_FILE

    def ident(g: AnswerGate) -> tuple[str, float, str]:
        return (g.key.sha256() if g.key else "", g.alpha, g.method)

    new = {ident(g) for g in gates}
    weights = {g.key.model_fingerprint for g in gates if g.key is not None}
    kept = [
        g
        for g in read_gates(folder)
        if ident(g) not in new and (g.key is None or not weights or g.key.model_fingerprint in weights)
    ] + list(gates)
    text = "[\n" + ",\n".join(g.to_json() for g in kept) + "\n]\n"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def pick_gate(
    gates: list[AnswerGate], key: GateKey, method: str, alpha: float | None = None
) -> tuple[AnswerGate | None, list[str]]:
    """The gate made for ``key`` by ``method`` (at ``alpha``, or the strictest shipped one), and, when
    there is none, how the nearest gate for the same workflow name differs (empty when none is near)."""
    fits = [
        g
        for g in gates
        if g.key is not None
        and g.key.matches(key)
        and g.method == method
        and (alpha is None or abs(g.alpha - alpha) < 1e-12)
    ]
    if fits:
        return min(fits, key=lambda g: g.alpha), []
    near = [g for g in gates if g.key is not None and g.key.workflow == key.workflow]
    return None, (key.differences(near[0].key) if near and near[0].key is not None else [])


def shipped_gate(model_id: str, key: GateKey, method: str) -> AnswerGate | None:
    """The gate the model folder ``model_id`` ships for ``key`` by ``method``, or None (a served model, no
    file, or none made for this key: then a warning names how the nearest one differs)."""
    folder = Path(model_id)
    if not folder.is_dir():
        return None
    gate, differences = pick_gate(read_gates(folder), key, method)
    if gate is None and differences:
        log.warning(
            "the gate %s ships for workflow %r was made for something else (%s): answering without a "
            "guarantee; run `foveate calibrate --workflow %s` for this setup",
            folder / GATES_FILE,
            key.workflow,
            "; ".join(differences),
            key.workflow,
        )
    return gate

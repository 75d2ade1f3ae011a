"""Calibration records in a database, and ``foveate calibrate`` writing them."""

from __future__ import annotations

import hashlib
import math
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from foveate.cli.main import app
from foveate.conformal import ConformalCalibration, SelectiveCalibration, calibrate, crc_threshold
from foveate.conformal.answer_gate import AnswerGate
from foveate.conformal.records import CalibrationRecord, CalibrationStore, template_hash
from foveate.errors import CalibrationStoreError

TEMPLATE = "Question: {question}\nAnswer:"


def _probs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(4), size=n)
    return probs, rng.integers(0, 4, size=n)


def test_store_round_trip_with_an_infinite_threshold(tmp_path: Path) -> None:
    db = tmp_path / "cal.db"
    probs, labels = _probs(3)
    full = calibrate(probs, labels, 0.1, "lac")  # n=3 is too few for alpha=0.1: threshold +inf
    assert math.isinf(full.threshold)
    probs40, labels40 = _probs(40, seed=1)
    finite = calibrate(probs40, labels40, 0.1, "lac")
    selective = crc_threshold(probs40.max(axis=1), probs40.argmax(axis=1) == labels40, 0.2)
    always_right = crc_threshold(probs40.max(axis=1), np.ones(40, dtype=bool), 0.2)
    assert always_right.threshold == -math.inf  # never wrong: answer everything
    earlier = datetime.now(timezone.utc) - timedelta(hours=1)

    with CalibrationStore(db) as store:
        old = store.save(
            CalibrationRecord.from_result(full, model_id="m", template=TEMPLATE).model_copy(
                update={"created_at": earlier}
            )
        )
        new = store.save(CalibrationRecord.from_result(finite, model_id="m", template=TEMPLATE))
        crc = store.save(CalibrationRecord.from_result(selective, model_id="other", template=TEMPLATE))
        everything = store.save(CalibrationRecord.from_result(always_right, model_id="x", template=TEMPLATE))
        assert old.id is not None and new.id is not None and crc.id is not None

    with CalibrationStore(db, create=False) as store:  # a fresh engine: what is really on disk
        assert [r.id for r in store.list()] == [old.id, new.id, crc.id, everything.id]
        assert [r.id for r in store.list(model_id="other")] == [crc.id]
        first = store.list()[0]
        assert first.threshold == math.inf and first.method == "lac" and first.n == 3
        assert first.created_at == earlier
        assert first.result() == full and isinstance(first.result(), ConformalCalibration)
        latest = store.latest("m", template_hash(TEMPLATE), 0.1, "lac")
        assert latest is not None and latest.id == new.id and latest.threshold == finite.threshold
        assert latest.result() == finite
        again = store.latest("other", template_hash(TEMPLATE), 0.2, "crc")
        assert again is not None and isinstance(again.result(), SelectiveCalibration)
        assert again.result() == selective
        assert store.latest("m", template_hash(TEMPLATE + " "), 0.1, "lac") is None
        minus = store.latest("x", template_hash(TEMPLATE), 0.2, "crc")
        assert minus is not None and minus.threshold == -math.inf and minus.result() == always_right
        assert store.latest("m", template_hash(TEMPLATE), 0.05, "lac") is None

    with sqlite3.connect(db) as conn:  # the documented storage: NULL for a non-finite threshold
        rows = conn.execute("SELECT threshold, threshold_text FROM calibrations ORDER BY id").fetchall()
    assert rows[0] == (None, "inf")
    assert rows[1] == (finite.threshold, repr(finite.threshold))
    assert rows[3] == (None, "-inf")


def test_template_hash_is_sha256_of_the_text() -> None:
    assert template_hash("{question}") == hashlib.sha256(b"{question}").hexdigest()
    assert template_hash("{question}") != template_hash("{question} ")


def test_a_missing_database_is_not_created_when_asked_not_to(tmp_path: Path) -> None:
    with pytest.raises(CalibrationStoreError, match="no calibration database"):
        CalibrationStore(tmp_path / "nope.db", create=False)
    assert not (tmp_path / "nope.db").exists()
    junk = tmp_path / "junk.db"
    junk.write_text("not a database")
    with pytest.raises(CalibrationStoreError, match="not a SQLite database"):
        CalibrationStore(junk)
    assert junk.read_text() == "not a database"


def test_calibrate_cli_stores_a_gate_keyed_by_model_and_workflow(tmp_path: Path) -> None:
    runner = CliRunner()
    bench, db = tmp_path / "bench", tmp_path / "cal.db"
    made = runner.invoke(app, ["bench", "make", "--n", "3", "--seed", "1", "--out", str(bench)])
    assert made.exit_code == 0, made.output
    args = ["calibrate", "--bench", str(bench), "--workflow", "direct", "--alpha", "0.1", "--db", str(db)]
    result = runner.invoke(app, [*args, "--method", "lac", "--free-text", "--out", str(tmp_path / "g.json")])
    assert result.exit_code == 0, result.output
    assert "calibration questions themselves" in result.output
    with CalibrationStore(db, create=False) as store:
        (record,) = store.list()
    gate = record.result()
    assert isinstance(gate, AnswerGate) and gate.key is not None
    assert record.method == "lac" and record.n == 6 and record.template_hash == gate.key.sha256()
    assert gate.calibrated_on == {"options": 3, "free_text": 3}
    assert gate.key.workflow == "direct" and gate.key.strategy == "none"
    assert gate.key.model_fingerprint.startswith("sha256:") and "tiny_vlm" in gate.key.model_id
    assert gate.options is not None and gate.options.threshold == math.inf  # 3 are too few for alpha 0.1
    assert AnswerGate.from_json((tmp_path / "g.json").read_text()) == gate
    # the record answers only for what it was made for: another workflow is refused, naming it
    picture = bench / "images" / "scene-1-00000.png"
    asked = runner.invoke(
        app,
        ["run", str(picture), "Colour?", "--workflow", "zoom", "--alpha", "0.1", "--method", "lac"],
        env={"FOVEATE_CALIBRATION_DB": str(db), "HOME": str(tmp_path)},
    )
    assert asked.exit_code == 2
    assert "workflow: calibrated for 'direct', asked with 'zoom'" in " ".join(asked.output.split())


def test_calibrate_cli_rejects_a_bad_method_before_writing(tmp_path: Path) -> None:
    db = tmp_path / "cal.db"
    result = CliRunner().invoke(
        app, ["calibrate", "--bench", str(tmp_path), "--method", "nope", "--db", str(db)]
    )
    assert result.exit_code == 2 and "unknown --method" in result.output
    assert not db.exists()


@pytest.mark.skipif(not __import__("os").environ.get("FOVEATE_TEST_DATABASE_URL"), reason="no PostgreSQL")
def test_records_round_trip_on_postgresql() -> None:
    import os
    import uuid

    url = os.environ["FOVEATE_TEST_DATABASE_URL"]
    model = f"pg-{uuid.uuid4().hex[:8]}"  # the server is shared by tests: keep to our own records
    probs, labels = _probs(40, seed=3)
    conformal = calibrate(probs, labels, 0.1, "lac")
    selective = crc_threshold(probs.max(axis=1), probs.argmax(axis=1) == labels, 0.2)
    with CalibrationStore(url) as store:
        a = store.save(CalibrationRecord.from_result(conformal, model_id=model, template=TEMPLATE))
        b = store.save(CalibrationRecord.from_result(selective, model_id=model, template=TEMPLATE))
    with CalibrationStore(url) as store:  # a new engine: what the server really holds
        assert [r.id for r in store.list(model_id=model)] == [a.id, b.id]
        found = store.latest(model, template_hash(TEMPLATE), 0.2, "crc")
        assert found is not None and found.result() == selective
        assert store.latest(model, template_hash(TEMPLATE), 0.1, "lac").result() == conformal  # type: ignore[union-attr]

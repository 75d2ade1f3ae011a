"""``foveate eval`` end to end on the embedded tiny VLM: every published format, the report's figures
recomputed here from ``results.jsonl``, resume, and refusals."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from foveate.cli.main import app
from foveate.synthetic.formats import write_hrbench, write_jsonl, write_mme_realworld, write_vstar

runner = CliRunner()
SIZE = (512, 640)  # big enough that the tiny VLM's 128 px whole-image view misses small targets


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FOVEATE_CONFIG", str(tmp_path / "none.toml"))


def _eval(*args: str) -> Any:
    return runner.invoke(app, ["eval", *args])


def _results(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _table(report: str, heading: str) -> dict[str, dict[str, str]]:
    """The markdown table under ``heading``, as {first cell: {column: cell}}."""
    block = report.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in block.splitlines() if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    out = {}
    for line in rows[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        out[cells[0]] = dict(zip(header, cells, strict=True))
    return out


def _accuracy(cell: str) -> tuple[float, float, float, int]:
    match = re.fullmatch(r"([\d.]+) \(([\d.]+)-([\d.]+)\), n=(\d+)", cell)
    assert match, cell
    return float(match[1]), float(match[2]), float(match[3]), int(match[4])


def _check_report_against_results(out: Path, splits: list[str]) -> dict[str, list[dict[str, Any]]]:
    report = (out / "report.md").read_text()
    lines = _results(out)
    by_entry: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        by_entry[line["entry"]].append(line)
    assert next(iter(by_entry)) == "direct"  # the baseline always runs, first
    accuracy = _table(report, "Accuracy")
    cost = _table(report, "Cost")
    for entry, rows in by_entry.items():
        right = [r["correct"] for r in rows]
        value, low, high, n = _accuracy(accuracy[entry]["overall"])
        assert n == len(rows) and value == pytest.approx(100 * sum(right) / n, abs=0.05)
        assert low <= value <= high
        for split in splits:
            part = [r["correct"] for r in rows if r["split"] == split]
            value, _, _, n = _accuracy(accuracy[entry][split])
            assert n == len(part) and value == pytest.approx(100 * sum(part) / n, abs=0.05)
        for column, field in (("probes", "probes"), ("forward passes", "forward_passes")):
            mean = sum(r[field] for r in rows) / len(rows)
            assert float(cost[entry][column]) == pytest.approx(mean, abs=0.05 + 1e-9)  # printed to 0.1
        assert float(cost[entry]["total tokens"]) == pytest.approx(
            sum(r["total_tokens"] for r in rows) / len(rows), abs=0.5
        )
        if entry != "direct":  # the paired difference is on the same questions
            base = {r["question_id"]: r["correct"] for r in by_entry["direct"]}
            diff = sum(r["correct"] - base[r["question_id"]] for r in rows) / len(rows)
            shown = float(accuracy[entry]["vs direct (paired)"].split()[0])
            assert shown == pytest.approx(100 * diff, abs=0.05)
    assert (out / "accuracy_vs_tokens.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return by_entry


def test_vstar_with_fast_limit_20(tmp_path: Path) -> None:
    bench, out = write_vstar(tmp_path / "vstar", 24, seed=3, size_range=SIZE), tmp_path / "out"
    result = _eval("vstar", str(bench), "--strategy", "fast", "--limit", "20", "--out", str(out))
    assert result.exit_code == 0, result.output
    by_entry = _check_report_against_results(out, ["attribute", "spatial"])
    assert set(by_entry) == {"direct", "fast"} and all(len(v) == 20 for v in by_entry.values())
    assert {r["split"] for r in by_entry["fast"]} == {"attribute", "spatial"}
    report = (out / "report.md").read_text()
    assert "## Protocol" in report and "visual tokens" in report  # the input resolution, stated
    assert "questions / s" in report and "s / question" in report
    grounding = _table(report, "Grounding")
    for entry, rows in by_entry.items():
        right = [r for r in rows if r["correct"]]
        missed = sum(1 for r in right if r["grounded"] is False)
        assert grounding[entry]["right answers with boxes"] == str(len(right))
        assert grounding[entry]["of them, crop missed every target"] == str(missed)
    assert all(r["grounded"] for r in by_entry["direct"])  # the whole image holds every target
    assert all(r["forward_passes"] >= 1 and r["total_tokens"] > 0 for r in _results(out))


@pytest.mark.parametrize("fmt", ["hrbench", "mme-realworld", "jsonl"])
def test_every_other_format_end_to_end(tmp_path: Path, fmt: str) -> None:
    if fmt == "hrbench":
        bench = write_hrbench(tmp_path / "hr" / "hr_bench_4k.tsv", 2, size_range=SIZE).parent
        splits = ["4K single", "4K cross"]
    elif fmt == "mme-realworld":
        bench = write_mme_realworld(tmp_path / "mme", 4, size_range=SIZE)
        splits = ["Perception / Synthetic attribute", "Perception / Synthetic relation"]
    else:
        bench = write_jsonl(tmp_path / "q" / "questions.jsonl", 4, size_range=SIZE)
        splits = ["attribute", "relation"]
    out = tmp_path / "out"
    result = _eval(fmt, str(bench), "--out", str(out))
    assert result.exit_code == 0, result.output
    by_entry = _check_report_against_results(out, splits)
    assert list(by_entry) == ["direct"]


def test_resume_answers_each_question_once_and_keeps_the_protocol(tmp_path: Path) -> None:
    bench, out = write_vstar(tmp_path / "vstar", 6, seed=5, size_range=SIZE), tmp_path / "out"
    assert _eval("vstar", str(bench), "--out", str(out)).exit_code == 0
    first = _results(out)
    # a kill: the last two answers never written, the one before cut in the middle of its line
    text = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").write_text("".join(text[:3]) + text[3][:40])
    refused = _eval("vstar", str(bench), "--out", str(out))
    assert refused.exit_code == 2 and "--resume" in refused.output
    other = _eval("vstar", str(bench), "--out", str(out), "--resume", "--limit", "2")
    assert other.exit_code == 2 and "limit" in other.output  # another protocol: refused
    resumed = _eval("vstar", str(bench), "--out", str(out), "--resume", "--strategy", "fast")
    assert resumed.exit_code == 0, resumed.output
    lines = _results(out)
    keys = [(r["entry"], r["question_id"]) for r in lines]
    assert len(keys) == len(set(keys)) == 12  # direct and fast, six questions each, once
    assert [r["choice"] for r in lines[:3]] == [r["choice"] for r in first[:3]]  # kept, not redone
    assert len({r["session"] for r in lines}) == 2


def test_errors_are_one_line(tmp_path: Path) -> None:
    write_mme_realworld(tmp_path / "mme", 2, size_range=(256, 320))
    result = _eval("vstar", str(tmp_path / "mme"), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "not a V* Bench folder" in result.output
    result = _eval("vstar", str(tmp_path / "mme"), "--strategy", "zoomy", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "no zoom strategy 'zoomy'" in result.output


def test_letters_protocol_lists_options_and_maps_letters_back(tmp_path: Path) -> None:
    bench, out = write_vstar(tmp_path / "vstar", 4, seed=3, size_range=SIZE), tmp_path / "out"
    result = _eval("vstar", str(bench), "--options", "letters", "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = _results(out)
    for line in lines:
        assert line["choice"] in _options(bench, line["question_id"])  # a letter mapped back to its text
        assert line["correct"] == (line["choice"] == line["truth"])
    assert "listed in the question as (A) text" in (out / "report.md").read_text()
    again = _eval("vstar", str(bench), "--out", str(out), "--resume")  # texts now: another protocol
    assert again.exit_code == 2 and "options" in again.output


def _options(bench: Path, question_id: str) -> list[str]:
    return list(json.loads((bench / f"{question_id}.json").read_text())["options"])


def test_asked_with_letters_round_trips() -> None:
    from foveate.evaluation.datasets import BenchQuestion

    q = BenchQuestion(id="1", image=Path("x.png"), question="Which?", options=["red", "blue"], answer="blue")
    text, marks = q.asked(letters=True)
    assert marks == ["A", "B"] and text.startswith("Which?\n(A) red\n(B) blue\n")
    assert [q.option_for(m, letters=True) for m in marks] == ["red", "blue"]
    assert q.asked() == ("Which?", ["red", "blue"]) and q.option_for("blue") == "blue"


def test_the_report_does_not_depend_on_the_order_answers_finished() -> None:
    import random

    from foveate.evaluation.evaluate import EvalRecord
    from foveate.evaluation.report import summarise

    rng = random.Random(0)
    records = [
        EvalRecord(question_id=f"q{i}", entry=entry, split="s", correct=rng.random() < 0.6, finished=1.0)
        for entry in ("direct", "fast")
        for i in range(40)
    ]
    shuffled = records[:]
    rng.shuffle(shuffled)
    shuffled.sort(key=lambda r: r.entry != "direct")  # direct still first, its questions in another order
    a, b = summarise(records), summarise(shuffled)
    assert [s.entry for s in a] == [s.entry for s in b] == ["direct", "fast"]
    for x, y in zip(a, b, strict=True):
        assert (x.overall.low, x.overall.high, x.vs_direct) == (y.overall.low, y.overall.high, y.vs_direct)


def test_free_text_questions_are_matched_after_normalising(tmp_path: Path) -> None:
    from foveate.conformal.matching import matches

    path = write_jsonl(tmp_path / "q" / "questions.jsonl", 3, seed=2, size_range=SIZE)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for line in lines:
        del line["options"]  # the same questions, answered in free text
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out"
    result = _eval("jsonl", str(path), "--out", str(out))
    assert result.exit_code == 0, result.output
    for record in _results(out):
        assert record["choice"] is not None and record["error"] is None
        assert record["correct"] == matches(record["choice"], record["truth"])

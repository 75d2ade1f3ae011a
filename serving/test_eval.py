"""`foveate eval` against a real vLLM server: the command that runs on the local model runs on a server too.

A server returns first-token log-probabilities only, so the protocol asks multiple-choice questions with
lettered options there by default (``letters``); single-word options can also be scored as texts, and then
the server's choices are the local model's up to bf16 rounding (test_vllm.py measures that).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from foveate.evaluation.datasets import load_benchmark
from foveate.evaluation.eval_folder import run_eval
from foveate.evaluation.evaluate import eval_entries
from foveate.settings import FoveateSettings
from foveate.synthetic.formats import write_vstar
from foveate.vlm import OpenAIVLM, TransformersVLM


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FoveateSettings:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FOVEATE_CONFIG", str(tmp_path / "none.toml"))
    return FoveateSettings()


def test_eval_runs_on_the_server_with_letters_and_texts(
    remote: OpenAIVLM, local: TransformersVLM, settings: FoveateSettings, tmp_path: Path
) -> None:
    bench = write_vstar(tmp_path / "vstar", 6, seed=3, size_range=(512, 640))
    questions = load_benchmark("vstar", bench, images_dir=tmp_path / "img")
    entries = eval_entries([], ["fast"])
    common = {"fmt": "vstar", "source": str(bench), "concurrency": 4}
    served = run_eval(questions, settings, entries, tmp_path / "letters", vlm=remote, **common)
    assert "listed in the question as (A) text" in served.report  # the server's default protocol
    assert all(r.error is None for r in served.records), [r.error for r in served.records if r.error]
    assert all(r.choice in q.options for r in served.records for q in questions if q.id == r.question_id)
    assert len(served.records) == 12 and (tmp_path / "letters" / "accuracy_vs_tokens.png").is_file()

    as_texts = run_eval(
        questions, settings, entries, tmp_path / "texts", vlm=remote, options="texts", **common
    )
    mine = run_eval(questions, settings, entries, tmp_path / "local", vlm=local, options="texts", **common)
    assert all(r.error is None for r in as_texts.records)
    got = {(r.entry, r.question_id): r.choice for r in as_texts.records}
    want = {(r.entry, r.question_id): r.choice for r in mine.records}
    agree = sum(got[k] == want[k] for k in want)
    print(f"eval on vLLM vs local, options as texts: {agree}/{len(want)} choices equal")
    assert agree >= len(want) - 2  # bf16 rounding may flip a close call or two, not the run

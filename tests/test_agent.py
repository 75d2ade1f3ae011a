"""The public Agent API on the tiny VLM: ask, stream, aask, feedback into memory and drift monitor."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

import foveate
from foveate.agent import Agent, Answer
from foveate.conformal import SelectiveCalibration
from foveate.conformal.answer_gate import AnswerGate
from foveate.errors import FoveateError
from foveate.memory import InsightMemory, SentenceTransformerEmbedder
from foveate.synthetic import generate_scene
from foveate.vlm.transformers_vlm import TransformersVLM

GATE = SelectiveCalibration(method="crc", alpha=0.2, n=100, threshold=0.5, answered=60, wrong=10)


def test_from_defaults_answers_a_scene_question_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vlm: TransformersVLM
) -> None:
    monkeypatch.setenv("FOVEATE_MEMORY_DB", str(tmp_path / "memory.db"))
    monkeypatch.setenv("FOVEATE_CACHE", str(tmp_path / "cache"))
    image, item = generate_scene(7, 0)
    with foveate.Agent.from_defaults(vlm=vlm) as agent:
        answer = agent.ask(item.question, image=image, options=item.options)
        assert isinstance(answer, Answer) and answer.workflow == "full" and answer.status == "done"
        # the embedded model's shipped gate for the full workflow decides: the option, or an abstention
        assert isinstance(agent.calibration, AnswerGate) and agent.calibration.key is not None
        assert agent.calibration.key.matches(agent.gate_key)
        assert answer.option in item.options
        assert answer.text == (None if answer.abstained else answer.option)
        assert answer.confidence == max(answer.option_scores)
        assert answer.tokens.visual_tokens > 0 and answer.latency_s > 0 and answer.probes > 0
        assert [t.split(":")[0] for t in answer.trace][:2] == ["perceive", "recall"]
        assert agent.memory is not None and sum(1 for _ in agent.memory.runs()) == 1
    assert (tmp_path / "memory.db").exists()


def test_feedback_writes_lessons_and_feeds_the_drift_monitor(
    tmp_path: Path, vlm: TransformersVLM, minilm: SentenceTransformerEmbedder
) -> None:
    image, item = generate_scene(7, 0)
    with InsightMemory.open(tmp_path / "m.db", embedder=minilm) as memory:
        agent = Agent(vlm, workflow="zoom", memory=memory, calibration=GATE)
        answer = agent.ask(item.question, image=image, options=item.options)
        assert len(memory) == 0 and not list(memory.runs())  # zoom does not remember by itself
        wrong = next(o for o in item.options if o != answer.option)
        agent.feedback(answer.run_id, answer=wrong)  # the person says the right answer was another
        (run,) = memory.runs()
        assert run.correct is False and run.answer == answer.option
        assert len(memory) >= 1 and all(i.run_id == run.id for i in memory.insights())
        # a selective gate's monitor counts every judged question: covered unless answered and wrong
        assert agent.monitor is not None and agent.monitor.status().seen == 1
        assert agent.monitor.status().covered == (1 if answer.abstained else 0)
        seen, lessons = agent.monitor.status().seen, len(memory)
        agent.feedback(answer.run_id, answer=wrong, note="said twice")  # the same outcome again
        assert agent.monitor.status().seen == seen and len(memory) == lessons
        (again,) = memory.runs()  # one record, updated
        assert again.id == run.id and again.feedback == "said twice"
        with pytest.raises(FoveateError, match="feedback needs"):
            agent.feedback(answer.run_id)
        agent.close()


def test_aask_runs_questions_concurrently_with_shared_passes(tmp_path: Path, vlm: TransformersVLM) -> None:
    scenes = [generate_scene(7, i) for i in range(3)]
    with Agent(vlm, workflow="zoom") as alone:
        expected = [alone.ask(it.question, image=img, options=it.options) for img, it in scenes]
    with Agent(vlm, workflow="zoom", coalesce=True) as agent:

        async def ask_all() -> list[Answer]:
            return await asyncio.gather(*(agent.aask(it.question, img, it.options) for img, it in scenes))

        got = asyncio.run(ask_all())
        many = agent.ask_many([(it.question, img, it.options) for img, it in scenes], max_concurrency=3)
    for a, b, c in zip(expected, got, many, strict=True):
        assert a.option == b.option == c.option
        assert all(
            math.isclose(x, y, abs_tol=1e-4) for x, y in zip(a.option_scores, b.option_scores, strict=True)
        )
    assert len({a.run_id for a in got + many}) == 6


def test_a_question_without_an_image_is_refused(vlm: TransformersVLM) -> None:
    with Agent(vlm, workflow="direct") as agent, pytest.raises(FoveateError, match="needs an image"):
        agent.ask("What is the color of the star?")


def test_truth_boxes_say_whether_the_answer_crop_held_the_targets(vlm: TransformersVLM) -> None:
    image, item = generate_scene(7, 2)  # a scene whose search settles on a crop (on scene 0: the whole image)
    truth = [list(t.box) for t in item.targets]
    far = (
        [[0, 0, 4, 4]]
        if item.targets[0].box[0] > 50
        else [[image.width - 4, image.height - 4, image.width, image.height]]
    )
    with Agent(vlm, workflow="zoom") as agent:
        plain = agent.ask(item.question, image=image, options=item.options)
        seen = agent.ask(item.question, image=image, options=item.options, truth_boxes=truth)
        elsewhere = agent.ask(item.question, image=image, options=item.options, truth_boxes=far)
        with pytest.raises(FoveateError, match="x0 < x1"):
            agent.ask(item.question, image=image, options=item.options, truth_boxes=[[5, 5, 5, 9]])
    assert plain.grounding is None and seen.answer_box is not None  # the search answered from a crop
    assert seen.grounding is not None and seen.grounding.crop == tuple(seen.answer_box)
    assert seen.grounding.holds_all == all(
        seen.answer_box[0] <= (t.box[0] + t.box[2]) / 2 < seen.answer_box[2]
        and seen.answer_box[1] <= (t.box[1] + t.box[3]) / 2 < seen.answer_box[3]
        for t in item.targets
    )
    assert elsewhere.grounding is not None and not elsewhere.grounding.holds_any

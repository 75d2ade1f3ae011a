"""Search experience follows from the visits, priors follow from right runs only, and memory keeps both apart
per kind of question and per namespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from foveate.insights import Trajectory, question_kind, remember, search_prior
from foveate.memory import HashingEmbedder, InsightMemory
from foveate.zoom.config import Visit
from foveate.zoom.experience import CueExperience, SearchExperience, experience_of, prior_from

W = H = 1024


def _zoomeye_visits(existence_leads: bool) -> list[Visit]:
    """A ZoomEye search that goes root -> top-left -> its bottom-right child, where it answers.

    Each expansion ranks four children by existence and latent; the path's node always has the top latent
    score, and the top existence score only when ``existence_leads``."""
    visits: list[Visit] = []

    def add(box: tuple[int, int, int, int], depth: int, **scores: float | None) -> None:
        visits.append(Visit(order=len(visits), cue="star", box=box, depth=depth, **scores))

    add((0, 0, W, H), 0, confidence=-1.0)
    quads = [(0, 0, 512, 512), (512, 0, W, 512), (0, 512, 512, H), (512, 512, W, H)]
    for i, q in enumerate(quads):
        add(q, 1, existence=0.5 if i == 0 else 0.1, latent=0.9 if i == 0 else 0.2)
    add(quads[0], 1, confidence=-0.5)
    kids = [(0, 0, 256, 256), (256, 0, 512, 256), (0, 256, 256, 512), (256, 256, 512, 512)]
    for i, k in enumerate(kids):
        on_path = i == 3
        existence = (0.8 if on_path else 0.1) if existence_leads else (0.1 if on_path else 0.8 - i * 0.1)
        add(k, 2, existence=existence, latent=0.9 if on_path else 0.0)
    add(kids[3], 2, confidence=0.95)
    return visits


def test_experience_names_where_the_search_stopped_and_what_led_it_there() -> None:
    exp = experience_of(_zoomeye_visits(existence_leads=True), "zoomeye", (W, H), probes=19)
    assert exp.strategy == "zoomeye" and exp.probes == 19 and len(exp.cues) == 1
    cue = exp.cues[0]
    assert (cue.cue, cue.depth, cue.pops) == ("star", 2, 3)
    assert cue.share == pytest.approx(1 / 16)
    assert cue.region == (0.25, 0.25, 0.5, 0.5)
    assert cue.stop_confidence == pytest.approx(0.95)
    assert cue.ranked == {"existence": [1, 2], "latent": [1, 2]}
    assert cue.led == {"existence": [1, 2], "latent": [1, 2]}
    assert cue.path_scores == {"existence": {1: 0.5, 2: 0.8}, "latent": {1: 0.9, 2: 0.9}}
    misled = experience_of(_zoomeye_visits(existence_leads=False), "zoomeye", (W, H), probes=19)
    assert misled.cues[0].led == {"existence": [1], "latent": [1, 2]}


def _right(
    led: dict[str, list[int]], depth: int = 3, pops: int = 4, ranked: dict[str, list[int]] | None = None
) -> SearchExperience:
    cue = CueExperience(
        cue="x",
        depth=depth,
        share=0.01,
        region=(0, 0, 0.1, 0.1),
        stop_confidence=0.9,
        pops=pops,
        ranked=ranked or {"existence": [1, 2], "latent": [1, 2]},
        led=led,
        path_scores={"existence": {1: 0.5, 2: 0.8 - depth / 10}},
    )
    return SearchExperience(strategy="zoomeye", image_size=(W, H), probes=30, cues=[cue])


def test_a_prior_copies_what_worked_and_needs_enough_right_runs() -> None:
    both: dict[str, list[int]] = {"existence": [1, 2]}
    assert prior_from([(_right(both), True)] * 4, "zoomeye") is None  # too few to go on
    prior = prior_from(
        [(_right(both, depth=d, pops=p), True) for d, p in [(3, 4), (2, 6), (3, 3)] * 2], "zoomeye"
    )
    assert prior is not None and prior.changes
    assert prior.rank_by == "existence" and prior.rank_from_depth == 1
    assert prior.min_stop_depth == 2 and prior.skip_early_stop
    assert prior.max_pops == 6 + 2 and prior.runs == 6
    # wrong runs are counted but shape nothing, however they went
    wrong = [(_right({"latent": [1, 2]}, depth=0, pops=40), False)] * 10
    mixed = prior_from(
        [(_right(both, depth=d, pops=p), True) for d, p in [(3, 4), (2, 6), (3, 3)] * 2] + wrong, "zoomeye"
    )
    assert mixed is not None and mixed.model_dump(exclude={"runs"}) == prior.model_dump(exclude={"runs"})
    assert mixed.runs == 16
    # another strategy's runs say nothing about this one
    assert prior_from([(_right(both), True)] * 6, "fast") is None


def test_a_probe_ranks_alone_only_from_the_depth_on_where_it_led() -> None:
    deep = [(_right({"existence": [2], "latent": [1]}), True) for _ in range(6)]
    prior = prior_from(deep, "zoomeye")
    assert prior is not None and (prior.rank_by, prior.rank_from_depth) == ("existence", 2)
    shallow = [(_right({"existence": [2], "latent": [1, 2]}), True) for _ in range(6)]
    prior = prior_from(shallow, "zoomeye")
    assert prior is not None and (prior.rank_by, prior.rank_from_depth) == ("latent", 1)
    split = [(_right({"existence": [1, 2]} if i % 2 else {"latent": [1, 2]}), True) for i in range(6)]
    prior = prior_from(split, "zoomeye")
    assert prior is not None and prior.rank_by is None


def _memory(tmp_path: Path, namespace: str = "default") -> InsightMemory:
    return InsightMemory.open(tmp_path / "memory.db", namespace=namespace, embedder=HashingEmbedder(32))


def _trajectory(question: str, cues: list[str], correct: bool | None, depth: int = 3) -> Trajectory:
    return Trajectory(
        question=question,
        cues=cues,
        answer="red",
        correct=correct,
        strategy="zoomeye",
        image_size=(W, H),
        probes=30,
        experience=_right({"existence": [1, 2]}, depth=depth),
    )


def test_experience_is_stored_with_the_run_and_recalled_by_kind_within_the_namespace(tmp_path: Path) -> None:
    asked = "What is the color of the star?"
    kind = question_kind(asked, ["star"])
    assert (
        kind
        == question_kind("What  is the color of the  circle ?", ["circle"])
        == "what is the color of <object>"
    )
    with _memory(tmp_path) as memory, _memory(tmp_path, "other") as other:
        for i in range(5):
            remember(
                memory,
                _trajectory(
                    f"What is the color of the {['star', 'circle'][i % 2]}?",
                    [["star", "circle"][i % 2]],
                    True,
                ),
            )
        remember(memory, _trajectory("Is the star left or right of the cross?", ["star", "cross"], True))
        remember(memory, _trajectory(asked, ["star"], None))  # outcome unknown: not experience yet
        for _ in range(6):
            remember(other, _trajectory(asked, ["star"], True, depth=1))
        runs = memory.run_log.experiences(kind)
        assert len(runs) == 5 and all(r.question_kind == kind and r.experience for r in runs)
        assert [r.id for r in runs] == sorted((r.id for r in runs), reverse=True)  # newest first
        prior = search_prior(memory, asked, ["star"], "zoomeye")
        assert prior is not None and prior.runs == 5 and prior.min_stop_depth == 3  # not the other's depth 1
        # depths read back from the stored JSON as numbers: the search looks the floor up by its depth
        assert prior.rank_by == "existence" and prior.rank_floor == {1: 0.5, 2: pytest.approx(0.5)}
        assert (
            search_prior(
                memory, "Is the circle left or right of the square?", ["circle", "square"], "zoomeye"
            )
            is None
        )
        theirs = search_prior(other, asked, ["star"], "zoomeye")
        assert theirs is not None and theirs.min_stop_depth == 1
        # the run's stored experience reads back as what was measured
        stored = SearchExperience.model_validate(runs[0].experience)
        assert stored == _right({"existence": [1, 2]})

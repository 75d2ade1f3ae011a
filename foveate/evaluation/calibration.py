"""Calibrate what is gated: run the workflow that will answer on labelled questions, and calibrate its
final answers (``foveate calibrate``, with ``foveate.conformal.procedure.calibrate_gate``).

A gate calibrated on whole-image answers and then applied to the answers a zoom search gives is applied
to scores it never saw; evidence acquisition changes the scores, and the risk bound then fails (BCEA,
arXiv 2606.16667, measured up to 17 points over; docs/benchmarks/abstention.md measures it here). So the
agent that calibrates is the agent that will answer: the same model, workflow and budget, and the gate it
makes carries that agent's ``gate_key``. The agent must run with no gate and, for a workflow that recalls
and remembers insights, preferably with no memory (what it would recall changes as it remembers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from foveate.agent import Agent
from foveate.conformal.matching import matches
from foveate.conformal.procedure import LabelledScore
from foveate.errors import FoveateError
from foveate.evaluation.labelled import LabelledQuestion

__all__ = ["score_questions"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


def score_questions(
    agent: Agent,
    questions: Sequence[LabelledQuestion],
    *,
    free_text: bool = False,
    progress: Progress | None = None,
) -> list[LabelledScore]:
    """Each question answered by ``agent`` (no gate), as a labelled score. A question with options gives a
    multiple-choice score; with ``free_text`` it is asked once more without them (its free-text score).
    Questions without options give free-text scores. Runs that produced no answer (a budget ran out) are
    left out: the gate abstains on them, so they add no risk."""
    if agent.calibration is not None:
        raise FoveateError("calibrate with an agent that has no gate: its answers would be filtered already")
    out: list[LabelledScore] = []
    skipped = 0
    for i, q in enumerate(questions, start=1):
        if progress is not None:
            progress(i, len(questions))
        if q.options:
            answer = agent.ask(q.question, image=q.image, options=q.options, category=q.category)
            if answer.option_scores and len(answer.option_scores) == len(q.options):
                out.append(LabelledScore(q.category, tuple(answer.option_scores), label=q.answer_index))
            else:
                skipped += 1
        if free_text or not q.options:
            answer = agent.ask(q.question, image=q.image, category=q.category)
            if answer.text is None:
                skipped += 1
                continue
            out.append(
                LabelledScore(
                    q.category, confidence=answer.confidence, correct=matches(answer.text, q.answer)
                )
            )
    if skipped:
        log.info("%d answers left out of the calibration: the workflow produced none", skipped)
    return out

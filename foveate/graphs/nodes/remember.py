"""``remember``: record the run and distil it into insights, when its outcome is known."""

from __future__ import annotations

from typing import Any

from foveate.graphs.nodes.common import NodeParams, say
from foveate.graphs.registry import NodeFn
from foveate.graphs.services import Services
from foveate.graphs.state import QAState, model_choice
from foveate.insights import Trajectory, remember
from foveate.zoom.config import Visit
from foveate.zoom.experience import experience_of

__all__ = ["remember_node", "trajectory_from_state"]


def remember_node(params: NodeParams, services: Services) -> NodeFn:
    """Record the run and distil it into insights (when the outcome is known: ground truth or a person)."""

    def remember_(state: QAState) -> dict[str, Any]:
        if services.memory is None:
            return {"messages": say("remember", "no insight memory configured")}
        answer = state.get("answer")
        human = state.get("human") or {}
        correct: bool | None = None
        if state.get("expected") is not None and answer is not None:
            correct = answer == state["expected"]
        elif human.get("answer") and state.get("option_scores"):
            # the person answered: the model's own top choice was right iff it matches
            correct = model_choice(state) == human["answer"]
        trajectory = trajectory_from_state(state, services.image(state).size, services.vlm.model_id)
        said = [human["feedback"]] if human.get("feedback") else []
        if human.get("answer"):
            said.append(f"a person answered {human['answer']!r}")
        trajectory = trajectory.model_copy(update={"correct": correct, "feedback": "; ".join(said) or None})
        writer = services.reasoner or services.vlm
        stored = remember(
            services.memory,
            trajectory,
            image_sha256=state.get("image_sha256"),
            vlm=writer,  # extract_insights lets it write only if it can
            drafts=None if correct is not None else [],  # lessons need an outcome; feedback adds them later
        )
        used = [int(i["id"]) for i in state.get("insights") or []]
        if used:
            services.memory.mark_used(used, helpful=correct)
        return {
            "run_id": stored.run_id,
            "insight_ids": stored.added + stored.merged,
            "messages": say("remember", f"run {stored.run_id}: {len(stored.drafts)} insights"),
        }

    return remember_


def trajectory_from_state(
    state: QAState | dict[str, Any], image_size: tuple[int, int], model_id: str
) -> Trajectory:
    """What the run did, for insight extraction (correctness left unknown: the caller knows it)."""
    box = state.get("answer_box")
    scores = state.get("option_scores") or []
    visits = [Visit.model_validate(v) for v in state.get("visits") or []]
    strategy = state.get("strategy", "direct")
    probes = int(state.get("probes") or 0)
    return Trajectory(
        question=state["question"],
        options=state.get("options") or [],
        answer=model_choice(state),
        strategy=strategy,
        cues=state.get("cues") or [],
        image_size=image_size,
        answer_box=tuple(box) if box else None,  # type: ignore[arg-type]
        confidence=max(scores) if scores else None,
        probes=probes,
        budget_exhausted=bool(state.get("budget_exhausted")),
        model_id=model_id,
        experience=experience_of(visits, strategy, image_size, probes) if visits else None,
    )

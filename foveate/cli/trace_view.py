"""How the chat shows a finished run: the ``/why`` lines and the views the ``/show`` picture draws."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from foveate.conformal.answer_gate import AnswerGate

if TYPE_CHECKING:
    from foveate.agent import Agent, Answer
    from foveate.graphs.spec import WorkflowSpec

__all__ = ["CropVisit", "crop_visits", "why_lines"]


@dataclass
class CropVisit:
    """A view in the shape ``save_trace`` draws, from the state's ``visits`` (or its crops)."""

    order: int
    box: tuple[int, int, int, int]
    confidence: float | None = None
    priority: float | None = None


def crop_visits(state: dict[str, Any]) -> tuple[list[CropVisit], bool]:
    """The views to draw for a run: the search's probed views with their confidences, or else its crops;
    and whether they are probed views."""
    visits = state.get("visits") or []
    if visits:
        return [
            CropVisit(int(v["order"]), tuple(v["box"]), v.get("confidence"), v.get("priority"))  # type: ignore[arg-type]
            for v in visits
        ], True
    return [CropVisit(i, tuple(c)) for i, c in enumerate(state.get("crops") or [], 1)], False  # type: ignore[arg-type]


def why_lines(answer: Answer, state: dict[str, Any], agent: Agent, spec: WorkflowSpec) -> list[str]:
    """The trace of a run, one rich line per fact, from its ``Answer`` and its final workflow state."""
    lines = [f"[bold]run {answer.run_id}[/] (workflow {escape(answer.workflow)}): {escape(answer.question)}"]
    lines += [f"  [cyan]{escape(t.split(':', 1)[0])}[/]:{escape(t.split(':', 1)[-1])}" for t in answer.trace]
    root = state.get("root_confidence")
    if root is not None:
        lines.append(f"whole image: answerable with confidence {root:+.2f}")
    crops, box = state.get("crops") or [], state.get("answer_box")
    if crops or box:
        lines.append(
            f"crops visited ({state.get('strategy', '?')} search, {answer.probes} probes): "
            + escape(", ".join(str(list(c)) for c in crops))
        )
        if box:
            lines.append(escape(f"answered from crop {list(box)}"))
    else:
        lines.append("crops visited: none (answered from the whole image)")
    lines += [f"  note: {escape(n)}" for n in state.get("zoom_notes") or []]
    if answer.options and answer.option_scores:
        ranked = sorted(zip(answer.option_scores, answer.options, strict=True), reverse=True)
        lines.append("option probabilities: " + ", ".join(f"{escape(o)} {p:.3f}" for p, o in ranked))
    if answer.confidence is not None:
        lines.append(f"confidence: {answer.confidence:.3f} (of {escape(str(answer.option))})")
    gate = agent.calibration
    if gate is None:
        lines.append("abstention gate: none loaded (answers carry no guarantee)")
    else:
        said = gate.describe() if isinstance(gate, AnswerGate) else f"threshold {gate.threshold:.4g}"
        lines.append(f"abstention gate: {type(gate).__name__}, alpha {gate.alpha:g}, {escape(said)}")
    lines.append(
        "prediction set: " + (escape(", ".join(answer.prediction_set)) if answer.prediction_set else "-")
    )
    judge = next((n for n in spec.nodes.values() if n.uses == "judge"), None)
    if judge is not None:
        lines.append(f"judge threshold: top probability >= {judge.params.get('threshold', 0.5)}")
    if answer.abstained:
        lines.append(f"abstained: {escape(answer.reason)}")
    insights = answer.insights
    lines.append(f"recalled insights: {len(insights)}")
    lines += [
        f"  \\[{escape(str(i.get('kind')))}] {escape(str(i.get('text')))} (score {i.get('score', 0):.2f})"
        for i in insights
    ]
    u = answer.tokens
    lines.append(f"tokens: {u.visual_tokens} visual + {u.text_tokens} text + {u.generated_tokens} generated")
    return lines

"""``abstain``: the conformal gate; optionally asks a person with LangGraph's ``interrupt()``."""

from __future__ import annotations

from typing import Any, Literal

from langgraph.types import interrupt

from foveate.conformal.answer_gate import AnswerGate
from foveate.conformal.gate import abstain_or_answer
from foveate.graphs.nodes.common import NodeParams, say
from foveate.graphs.registry import NodeFn
from foveate.graphs.services import Services
from foveate.graphs.state import QAState

__all__ = ["AbstainParams", "abstain_node"]


class AbstainParams(NodeParams):
    on_ambiguous: Literal["abstain", "set"] = "abstain"
    ask_human: bool = False  # on abstention, interrupt() and let the caller answer or give feedback


def abstain_node(params: AbstainParams, services: Services) -> NodeFn:
    """The conformal gate: answer only when the calibrated rule says the risk is within alpha."""

    def abstain(state: QAState) -> dict[str, Any]:
        options, scores, answer = (
            state.get("options") or [],
            state.get("option_scores") or [],
            state.get("answer"),
        )
        gate = services.calibration
        update: dict[str, Any]
        why = ""  # the gate's reason, also when it answered
        if answer is None:
            update = {"abstained": True, "abstain_reason": "no answer was produced"}
        elif gate is None:
            return {
                "abstained": False,
                "abstain_reason": "",
                "messages": say("abstain", "answered without a guarantee (no calibration loaded)"),
            }
        elif options and len(scores) == len(options):
            decision = (
                gate.decide(options, scores, on_ambiguous=params.on_ambiguous, category=state.get("category"))
                if isinstance(gate, AnswerGate)
                else abstain_or_answer(options, scores, gate, on_ambiguous=params.on_ambiguous)
            )
            why = decision.reason
            update = {
                "abstained": decision.action == "abstain",
                "abstain_reason": "" if decision.action == "answer" else decision.reason,
                "prediction_set": decision.kept,
            }
        elif not isinstance(gate, AnswerGate):
            return {
                "abstained": False,
                "abstain_reason": "",
                "messages": say(
                    "abstain",
                    "answered without a guarantee (a free-text answer; this calibration covers "
                    "multiple-choice answers only: calibrate with `foveate calibrate` for a gate on both)",
                ),
            }
        else:
            decision = gate.decide_free_text(
                answer, state.get("answer_confidence"), category=state.get("category")
            )
            why = decision.reason
            update = {
                "abstained": decision.action == "abstain",
                "abstain_reason": "" if decision.action == "answer" else decision.reason,
                "prediction_set": [],
            }
        if update["abstained"] and params.ask_human:
            reply = interrupt(
                {
                    "question": state["question"],
                    "options": options,
                    "candidate": answer,
                    "option_scores": scores,
                    "reason": update["abstain_reason"],
                }
            )
            human = reply if isinstance(reply, dict) else {"answer": reply}
            update["human"] = human
            if human.get("answer"):
                update |= {"abstained": False, "answer": str(human["answer"]), "abstain_reason": ""}
        said = (
            f"abstained: {update['abstain_reason']}"
            if update["abstained"]
            else "answered" + (f": {why}" if why else "")
        )
        return update | {"messages": say("abstain", said)}

    return abstain

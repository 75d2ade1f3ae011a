"""``abstain``: the conformal gate; optionally asks a person with LangGraph's ``interrupt()``."""

from __future__ import annotations

from typing import Any, Literal

from langgraph.types import interrupt

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
        if answer is None:
            update = {"abstained": True, "abstain_reason": "no answer was produced"}
        elif services.calibration is None or not options or len(scores) != len(options):
            why = "no calibration loaded" if services.calibration is None else "a free-text answer"
            return {
                "abstained": False,
                "abstain_reason": "",
                "messages": say("abstain", f"answered without a guarantee ({why})"),
            }
        else:
            decision = abstain_or_answer(
                options, scores, services.calibration, on_ambiguous=params.on_ambiguous
            )
            update = {
                "abstained": decision.action == "abstain",
                "abstain_reason": "" if decision.action == "answer" else decision.reason,
                "prediction_set": decision.kept,
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
        said = f"abstained: {update['abstain_reason']}" if update["abstained"] else "answered"
        return update | {"messages": say("abstain", said)}

    return abstain

"""The one state every workflow reads and writes, and the pydantic models of a run's input and output.

The state is a ``TypedDict`` of plain JSON values (strings, numbers, lists, dicts): LangGraph checkpoints
it after every node, and a run resumed in another process must read back exactly what was written, with
no pickled objects. Images are therefore a file path plus a SHA-256; ``prepare_input`` writes an image
given in memory to a content-addressed cache first. Token spending is summed across nodes by a reducer,
so the per-question budget holds over the whole graph.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from foveate.errors import FoveateError, validation_problems
from foveate.vlm.budget import TokenBudget, TokenUsage

__all__ = ["QAState", "RunInput", "RunOutput", "add_usage", "model_choice", "top_choice", "usage_of"]


def add_usage(left: dict[str, int] | None, right: dict[str, int] | None) -> dict[str, int]:
    """Reducer: token usage adds up over nodes (and over loops back to a node)."""
    total = dict(left or {})
    for key, value in (right or {}).items():
        total[key] = total.get(key, 0) + int(value)
    return total


def top_choice(options: Sequence[str], scores: Sequence[float], fallback: str | None) -> str | None:
    """The top-scored option; ``fallback`` (a free-text answer) when there are no option scores."""
    if scores and len(scores) == len(options):
        return options[list(scores).index(max(scores))]
    return fallback


def model_choice(state: QAState | dict[str, Any]) -> str | None:
    """What the model chose, even where a person's answer has since replaced ``answer`` in the state."""
    return top_choice(state.get("options") or [], state.get("option_scores") or [], state.get("answer"))


def usage_of(state: QAState | dict[str, Any]) -> TokenUsage:
    return TokenUsage(**(state.get("spent") or {}))


class QAState(TypedDict, total=False):
    """Everything a question's run knows so far. Keys are filled in as nodes run."""

    # input
    question: str
    options: list[str]
    image_path: str
    image_sha256: str
    budget: dict[str, Any]  # TokenBudget as JSON
    expected: str | None  # the right answer, when known (benchmarks, feedback); never shown to a model
    category: str | None  # the question's category, for a gate calibrated per category (Mondrian)
    # perception
    cues: list[str]
    perception: Annotated[list[str], operator.add]  # notes: what was seen, by which node
    root_confidence: float | None  # "can the question be answered from the whole image?" in [-1, 1]
    # zoom
    strategy: str
    crops: list[list[int]]
    answer_box: list[int] | None
    probes: Annotated[int, operator.add]
    visits: list[dict[str, Any]]  # the last search's probed views: box, depth, confidence, scores
    zoom_notes: Annotated[list[str], operator.add]
    budget_exhausted: bool
    # recall
    insights: list[dict[str, Any]]  # {"id", "text", "kind", "score"}
    # reasoning
    answer: str | None
    option_scores: list[float]
    answer_confidence: float | None  # a free-text answer's sequence probability (None: options, or unknown)
    attempts: int  # answers produced so far (the judge's loop counter)
    verdict: str  # the judge's: "sufficient", "retry" or "give_up"
    # abstention
    prediction_set: list[str]
    abstained: bool
    abstain_reason: str
    human: dict[str, Any] | None  # what a person said when asked (answer / feedback)
    # memory
    run_id: int | None
    insight_ids: list[int]
    # accounting and the conversation
    spent: Annotated[dict[str, int], add_usage]
    overruns: Annotated[list[str], operator.add]  # calls that spent more than they held (a server's report)
    messages: Annotated[list[dict[str, str]], operator.add]  # {"node", "text"}: a readable log


MAX_OPTIONS = 26
"""Most options a question may have unless the caller says otherwise (``RunInput.checked(max_options=)``,
setting ``max_options``): each is scored against the image (500 options took 64,000 visual tokens in one
call); A-Z for a lettered protocol."""


class RunInput(BaseModel):
    """A question for a workflow (the Python API and the CLI build one; ``Workflow.start_state`` turns it
    into the initial state)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    question: str
    image: Any  # a path, PIL image, bytes or array: whatever ``load_image`` takes
    options: list[str] = Field(default_factory=list)
    budget: TokenBudget = Field(default_factory=TokenBudget)
    expected: str | None = None
    category: str | None = None
    """The question's category (``attribute``, ``relation``, yours): a gate calibrated per category decides
    it by that category's calibration."""

    @classmethod
    def checked(cls, *, max_options: int = MAX_OPTIONS, **fields: Any) -> RunInput:
        """A run input, or a ``FoveateError`` saying in one line what is wrong with the question."""
        if not isinstance(fields.get("question"), str):
            raise FoveateError(f"a question is text (str), not {type(fields.get('question')).__name__}")
        options = fields.get("options")
        if options is not None and (isinstance(options, (str, bytes)) or not isinstance(options, Sequence)):
            # a str, dict or set would be split into characters, keys or an arbitrary order
            raise FoveateError(f"options are a list of strings, not {type(options).__name__}")
        try:
            return cls.model_validate(fields, context={"max_options": max_options})
        except ValidationError as exc:
            raise FoveateError(validation_problems(exc, "question")) from None

    @field_validator("question")
    @classmethod
    def _words(cls, question: str) -> str:
        if not question.strip():
            raise ValueError("the question is empty")
        try:
            question.encode("utf-8")
        except UnicodeEncodeError:  # undecodable bytes from a command line arrive as lone surrogates
            raise ValueError("the question is not valid UTF-8 text") from None
        return question

    @field_validator("options")
    @classmethod
    def _choices(cls, options: list[str], info: ValidationInfo) -> list[str]:
        # each option's probability is what the gate reads: a repeated option splits it (and can flip the
        # answer), a single option is always "chosen" with probability 1, which claims nothing
        if len(options) == 1:
            raise ValueError(f"one option ({options[0]!r}) is not a choice: give two or more, or none")
        limit = int((info.context or {}).get("max_options", MAX_OPTIONS))
        if len(options) > limit:
            raise ValueError(
                f"{len(options)} options: at most {limit} (each is scored on the image; setting max_options)"
            )
        seen: set[str] = set()
        for option in options:
            key = option.strip()
            if not key:
                raise ValueError("an option is empty")
            try:
                key.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"option {key!r} is not valid UTF-8 text") from None
            if key in seen:
                raise ValueError(f"option {key!r} is given twice")
            seen.add(key)
        return options


class RunOutput(BaseModel):
    """What a run ends with, read off the final state."""

    model_config = ConfigDict(frozen=True)
    run_id: str  # the LangGraph thread id (resume with it)
    status: Literal["done", "waiting", "incomplete"] = "done"  # waiting: paused for a person
    pending: dict[str, Any] | None = None  # what the paused run asks the person
    question: str
    answer: str | None
    options: list[str] = Field(default_factory=list)
    option_scores: list[float] = Field(default_factory=list)
    answer_confidence: float | None = None  # a free-text answer's sequence probability
    abstained: bool = False
    abstain_reason: str = ""
    prediction_set: list[str] = Field(default_factory=list)
    crops: list[list[int]] = Field(default_factory=list)
    answer_box: list[int] | None = None  # the crop the answer was given from (None: the whole image)
    insights: list[dict[str, Any]] = Field(default_factory=list)
    perception: list[str] = Field(default_factory=list)
    probes: int = 0
    attempts: int = 0
    usage: TokenUsage = Field(default_factory=TokenUsage)
    overruns: list[str] = Field(default_factory=list)  # calls that spent more than they held
    memory_run_id: int | None = None
    messages: list[dict[str, str]] = Field(default_factory=list)

    @property
    def model_choice(self) -> str | None:
        """The model's top option, also when the gate withheld it (``answer`` is then None)."""
        return top_choice(self.options, self.option_scores, self.answer)

    @classmethod
    def from_state(
        cls,
        run_id: str,
        state: dict[str, Any],
        *,
        status: Literal["done", "waiting", "incomplete"] = "done",
        pending: Any = None,
    ) -> RunOutput:
        return cls(
            run_id=run_id,
            status=status,
            pending=pending if isinstance(pending, dict) or pending is None else {"value": pending},
            question=state.get("question", ""),
            answer=None if state.get("abstained") else state.get("answer"),
            options=state.get("options") or [],
            option_scores=state.get("option_scores") or [],
            answer_confidence=state.get("answer_confidence"),
            abstained=bool(state.get("abstained", False)),
            abstain_reason=state.get("abstain_reason", ""),
            prediction_set=state.get("prediction_set") or [],
            crops=state.get("crops") or [],
            answer_box=state.get("answer_box") or None,
            insights=state.get("insights") or [],
            perception=state.get("perception") or [],
            probes=int(state.get("probes") or 0),
            attempts=int(state.get("attempts") or 0),
            usage=usage_of(state),
            overruns=list(state.get("overruns") or []),
            memory_run_id=state.get("run_id"),
            messages=state.get("messages") or [],
        )

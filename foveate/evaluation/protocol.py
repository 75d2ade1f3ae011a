"""The fixed protocol of ``foveate eval``: what is compared, on what, at what resolution, scored how.

Reproductions of zoom papers disagree by points because the protocol moved, not the method: ZoomEye's
LLaVA-1.5 V* figure reproduced at 77.5 instead of 83.3 (om-ai-lab/ZoomEye issue 4), Qwen2.5-VL-3B's direct
baseline at 90.05 against the paper's 76.96 under other resolution settings (issue 9). So the protocol is
fixed and written at the top of every report, and a resumed run must keep it:

- the direct baseline (the built-in ``direct`` workflow: one look at the whole image) runs on the same
  questions in the same run, always, and its row comes first;
- options are scored in the order the benchmark stores them, as their texts (the model's choice is the
  option it scores highest; nothing generated is parsed), as SEAL and ZoomEye score V*; a server
  (``OpenAIVLM``) returns only first-token log-probabilities, which cannot tell apart options that begin
  alike (V*'s spatial options are whole sentences), so there the options are listed in the question as
  ``(A) text`` and the letters are scored, as VLMEvalKit and lmms-eval ask HR-Bench and MME-RealWorld;
- no abstention gate: every question gets the model's choice, so accuracy is over all questions;
- the model's input resolution (how a benchmark image becomes visual tokens) and the token budget are
  stated; each entry (model, weights, workflow spec, strategies, budget) is identified by its ``GateKey``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from foveate.conformal.answer_gate import GateKey
from foveate.errors import ManifestError
from foveate.vlm.base import VLM
from foveate.vlm.budget import TokenBudget

__all__ = ["OPTION_LINES", "PROTOCOL_LINES", "EvalProtocol", "OptionFormat", "input_resolution"]

OptionFormat = Literal["texts", "letters"]

OPTION_LINES = {
    "texts": "Options were scored as texts in the benchmark's stored order; the choice is the highest-scored "
    "option (nothing generated is parsed), as SEAL and ZoomEye score V*.",
    "letters": "Options were listed in the question as (A) text, (B) text ... in the benchmark's stored "
    "order, and the letters scored (a server returns first-token log-probabilities only); the choice is the "
    "highest-scored letter's option (nothing generated is parsed).",
}
PROTOCOL_LINES = (
    "The direct baseline (one look at the whole image) ran on the same questions in the same run.",
    "No abstention gate: every question counts; accuracy is over all questions (micro), per split and "
    "overall, with 95% bootstrap intervals (2000 resamples over questions).",
    "A question whose run failed (an unreadable image, a budget too small for any answer) counts as wrong "
    "and is listed under errors.",
)


class EvalProtocol(BaseModel):
    """What a results folder was made under (``protocol.json``); a resume must match it."""

    model_config = ConfigDict(frozen=True)
    format: str
    """The benchmark format (``vstar``, ``hrbench``, ``mme-realworld``, ``jsonl``)."""
    path: str
    """Where the benchmark was read from."""
    limit: int | None = None
    """``--limit``: how many questions, taken from each split in turn (None: all)."""
    options: OptionFormat = "texts"
    """How options were asked: scored as ``texts``, or listed in the question and scored as ``letters``."""
    model_id: str
    """The model's id."""
    resolution: str
    """How the model sees the benchmark's images: its visual-token rule, at the first image's size."""
    budget: dict[str, Any] = Field(default_factory=dict)
    """The per-question token budget, as ``TokenBudget`` fields."""
    entries: dict[str, GateKey] = Field(default_factory=dict)
    """Each compared workflow, by its label in the report (``direct`` first), and what it is."""

    def check_resume(self, stored: EvalProtocol) -> None:
        """Refuse to continue results made under another protocol, naming the first difference."""
        for field in ("format", "limit", "options", "model_id", "budget"):
            mine, theirs = getattr(self, field), getattr(stored, field)
            if mine != theirs:
                raise ManifestError(
                    f"cannot resume: the results were made with {field} {theirs!r}, not {mine!r}"
                )
        for label, key in self.entries.items():
            if label in stored.entries and not key.matches(stored.entries[label]):
                raise ManifestError(
                    f"cannot resume {label!r}: " + "; ".join(key.differences(stored.entries[label]))
                )


def input_resolution(vlm: VLM, budget: TokenBudget, size: tuple[int, int]) -> str:
    """A sentence on how ``vlm`` sees an image of ``size`` (width, height) under ``budget``."""
    width, height = size
    profile = vlm.profile
    rule = profile.token_rule
    cap = budget.max_visual_tokens_per_image
    capped = f"; at most {cap} visual tokens per image" if cap else "; no per-image visual-token cap"
    if rule is None:
        return (
            f"{vlm.model_id}: visual-token rule unknown (a server of no known family); planning assumes "
            f"{profile.assumed_image_tokens} tokens per image{capped}"
        )
    h, w = rule.processed_size(height, width)
    return (
        f"a {width}x{height} image is seen at {w}x{h} px as {rule.tokens_for(height, width)} visual tokens "
        f"({profile.family or 'unknown family'}); zoom views at {profile.native_side} px{capped} "
        f"(rule: {rule!r})"
    )

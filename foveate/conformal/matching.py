"""When a free-text answer counts as right: a normalised exact match, as the VQA evaluation does it.

Both texts are lower-cased, number words up to twenty become digits, punctuation becomes space, the
articles ``a``, ``an``, ``the`` are dropped and whitespace is collapsed; the answer is right when what is
left equals what is left of the truth (or of any of several accepted truths). Strict on purpose: "blue" and
"It is blue." match, "navy" and "blue" do not, so a gate calibrated on this match never counts a paraphrase
it cannot check as right.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable

__all__ = ["matches", "normalise_answer"]

_NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty"
)
_NUMBERS = {word: str(i) for i, word in enumerate(_NUMBER_WORDS.split(" "))}
_ARTICLES = {"a", "an", "the"}
_FILLER = re.compile(r"^(it is|it's|its|answer is|answer|the answer is)\s+")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def normalise_answer(text: str) -> str:
    """The text as it is compared: lower case, digits for number words, no punctuation or articles."""
    words = text.lower().translate(_PUNCT).split()
    kept = " ".join(_NUMBERS.get(w, w) for w in words if w not in _ARTICLES)
    return _FILLER.sub("", kept).strip()


def matches(answer: str, truth: str | Iterable[str]) -> bool:
    """Whether ``answer`` equals ``truth`` (or one of several accepted truths) once both are normalised."""
    truths = [truth] if isinstance(truth, str) else list(truth)
    said = normalise_answer(answer)
    return bool(said) and any(said == normalise_answer(t) for t in truths)

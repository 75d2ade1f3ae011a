"""The objects a question is about (ZoomEye's visual cues): from the model's own list, or from its wording.

A model that writes lists the cues itself (``ZoomAgent.list_cues`` asks it; ``parse_cues`` reads its
answer). A model that cannot write (the embedded tiny VLM) gets them from the question's wording, for the
phrasings of V*-style questions that name their objects (``wording_cues``); any other question is searched
for as a whole (ZoomEye's rule when a question names no single object). Never from ground truth.
"""

from __future__ import annotations

import re

__all__ = ["parse_cues", "wording_cues"]

# "What is the color of the blue star?" / "Is the red circle to the left or to the right of the green
# cross?": the synthetic benchmark's phrasings (foveate.synthetic), V* Bench's attribute and relation kinds.
_ATTRIBUTE = re.compile(r"^What is the colou?r of the (?P<shape>[a-z ]+)\?$")
_RELATION = re.compile(r"^Is the (?P<a>[a-z ]+) to the left or to the right of the (?P<b>[a-z ]+)\?$")


def wording_cues(question: str) -> list[str]:
    """The objects a question names, read off its wording; ``[]`` when it is not a phrasing known here."""
    if match := _ATTRIBUTE.match(question):
        return [match["shape"]]
    if match := _RELATION.match(question):
        return [match["a"], match["b"]]
    return []


def parse_cues(text: str) -> list[str]:
    """Objects from a cue-listing generation: split on commas, newlines and 'and'; articles dropped."""
    parts = re.split(r",|\n|;|\band\b", text)
    cues: list[str] = []
    for part in parts:
        cue = re.sub(r"^[\s\-*\d.)]*", "", part.strip())
        cue = re.sub(r"^(the|a|an)\s+", "", cue, flags=re.IGNORECASE).strip(" .")
        if cue and cue.lower() not in (c.lower() for c in cues) and len(cue) <= 60:
            cues.append(cue)
    return cues[:4]

"""Model families, one module each, and the registry that finds a model's family.

A ``Family`` (``foveate.vlm.profile``) holds everything foveate knows about an architecture family. The
built-in ones: ``llava`` (and ``llava_next`` / ``llava_onevision`` for their zoom wording), ``qwen2_vl``,
``qwen2_5_vl``, ``idefics3``, ``internvl`` and ``foveate-tiny`` (the embedded model). A new family is one
module of your own and one ``register`` call on a copy of the built-in registry
(``examples/custom_family.py``); there is no global registry to mutate::

    families = builtin_families()
    families.register(Family(name="my_vlm", model_types=("my_vlm",), zoom=ZoomPrompts(bias=0.5)))
    vlm = load_vlm("/models/my-vlm", families=families)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from foveate.errors import UnsupportedRequestError
from foveate.vlm.families import foveate_tiny, idefics3, internvl, llava, qwen2_5_vl, qwen2_vl
from foveate.vlm.profile import Family
from foveate.vlm.visual_tokens import VisualTokenRule

__all__ = ["FamilyRegistry", "builtin_families", "family_name_in_config"]

CONFIG_KEY = "foveate_family"
"""The ``config.json`` key by which a model folder names its family (read before ``model_type``)."""


def family_name_in_config(config: Any) -> str | None:
    """The family a model folder declares in its config (``"foveate_family"``), if any."""
    value = getattr(config, CONFIG_KEY, None)
    return str(value) if value else None


class FamilyRegistry:
    """Families by name and by the ``model_type`` values they cover."""

    def __init__(self, families: Iterable[Family] = ()) -> None:
        self._by_name: dict[str, Family] = {}
        for family in families:
            self.register(family)

    def register(self, family: Family) -> Family:
        """Add ``family`` (replacing one of the same name); returns it."""
        self._by_name[family.name] = family
        return family

    def copy(self) -> FamilyRegistry:
        return FamilyRegistry(self._by_name.values())

    def __iter__(self) -> Iterator[Family]:
        return iter(self._by_name.values())

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._by_name))

    def get(self, name: str) -> Family:
        """The family called ``name``; ``UnsupportedRequestError`` naming the known ones otherwise."""
        try:
            return self._by_name[name]
        except KeyError:
            raise UnsupportedRequestError(
                f"unknown model family {name!r}; known: {', '.join(self.names())}"
            ) from None

    def for_model_type(self, model_type: str) -> Family | None:
        """The family covering ``model_type`` (the last registered wins), or None."""
        found = None
        for family in self._by_name.values():
            if model_type in family.model_types:
                found = family
        return found

    def for_config(self, config: Any) -> Family | None:
        """A loaded model's family: the one its folder names (``"foveate_family"``), else by
        ``model_type``."""
        named = family_name_in_config(config)
        if named is not None:
            return self.get(named)
        return self.for_model_type(str(getattr(config, "model_type", "")))

    def read_rule(self, processor: Any, config: Any | None = None) -> VisualTokenRule:
        """The visual-token rule of a loaded processor, read by the family whose processor it is.

        Processors name themselves (their classes), so every family's reader is asked; ``ValueError``
        naming the processor when none replicates it.
        """
        for family in self._by_name.values():
            if family.read_rule is not None:
                rule = family.read_rule(processor, config)
                if rule is not None:
                    return rule
        raise ValueError(
            f"unsupported processor {type(processor).__name__}: visual tokens can be predicted for "
            "LlavaProcessor, Qwen2VLProcessor / Qwen2_5_VLProcessor / Qwen3VLProcessor / "
            "PaddleOCRVLProcessor and Idefics3Processor / SmolVLMProcessor"
        )


def builtin_families() -> FamilyRegistry:
    """A fresh registry of the built-in families: yours to extend."""
    return FamilyRegistry(
        [
            llava.FAMILY,
            llava.LLAVA_NEXT,
            llava.LLAVA_ONEVISION,
            qwen2_vl.FAMILY,
            qwen2_5_vl.FAMILY,
            idefics3.FAMILY,
            internvl.FAMILY,
            foveate_tiny.FAMILY,
        ]
    )

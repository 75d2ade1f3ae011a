"""A probe-replay cache for tuning zoom search: every model answer memoised by view and prompt.

Zoom strategies walk the same image tree, so two variants of a search mostly ask the same questions about
the same crops. ``ReplayVLM`` wraps a model and keeps each answer (a Yes/No probe, an option scoring, a
relevance map) under the SHA-1 of the view's pixels and the prompt; a variant scored after another then
runs mostly from the cache, and a search variant is scored on every scene distribution in minutes, not
hours. ``python -m benchmarks.zoom --replay FILE`` uses it.

What the cache changes and what it does not:

- the search sees the same confidences, so accuracy and probes are a real run's, up to batch-composition
  rounding in the last digits of a probability;
- a call with any answer missing runs whole, so its forward passes and tokens are real; a call answered
  wholly from the cache books the forward passes a real call of its composition makes (the backend's
  batching rule, restated in ``_set_passes``) and each answer's recorded tokens, which differ from a real
  call's where the answers were first recorded in calls of another composition (a view's image tokens
  are booked on its first question in a shared-prefix batch). Measure tokens on a run without
  ``--replay``;
- wall time is not a model's any more: a page made with ``--replay`` says so and leaves wall time out;
- pruning and a per-image visual cap change what the model sees without changing the view, so calls
  under either bypass the cache.

The file records the sha256 of the weights and of the code that answers (``foveate.vlm``,
``foveate.tiny_vlm`` and this file); opening it with anything else is refused, naming what differs.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import sources_sha256
from foveate.vlm.base import VLM, BaseVLM
from foveate.vlm.budget import TokenLedger, TokenUsage
from foveate.vlm.types import ImagePart, RelevanceMap, ScoreResult, VLMRequest, VLMResult, YesNoResult

__all__ = ["ReplayStore", "ReplayVLM", "answering_code_sha256"]


def answering_code_sha256() -> str:
    """The sha256 of the code between a view and the model's answer: ``foveate.vlm``, ``foveate.tiny_vlm``
    and this file. (Search code is not in it: a changed search asks other questions, which miss.)"""
    return sources_sha256([Path(__file__)], ("vlm", "tiny_vlm"))


def view_digest(image: Image.Image) -> str:
    """SHA-1 of a view's mode, size and pixels."""
    digest = hashlib.sha1(f"{image.mode}{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


class ReplayStore:
    """The cache file: an SQLite table of answers keyed by view and prompt, and the hashes that made it.

    Opening a file made by other weights or code raises ``SystemExit`` naming which; a new file records
    this run's hashes. Answers are written in one transaction per ``flush`` (the benchmark flushes after
    each scene), so a killed run keeps every scene it finished.
    """

    def __init__(self, path: Path, weights: str, code: str) -> None:
        self.path = path
        self.hits = 0
        self.misses = 0
        self._pending: dict[str, bytes] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        stored = dict(self._db.execute("SELECT name, value FROM meta").fetchall())
        mine = {"weights_sha256": weights, "code_sha256": code}
        if not stored:
            with self._db:
                self._db.executemany("INSERT INTO meta VALUES (?, ?)", list(mine.items()))
            return
        for name, value in mine.items():
            if stored.get(name) != value:
                self._db.close()
                what = "weights" if name == "weights_sha256" else "answering code (foveate.vlm, tiny_vlm)"
                raise SystemExit(
                    f"{path} was made by other {what}: its {name} is {stored.get(name)}, this run's is "
                    f"{value}. Delete the file to start a new cache."
                )

    def get(self, key: str) -> bytes | None:
        if key in self._pending:
            self.hits += 1
            return self._pending[key]
        row = self._db.execute("SELECT value FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return bytes(row[0])

    def put(self, key: str, value: bytes) -> None:
        self._pending[key] = value

    def flush(self) -> None:
        if self._pending:
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO answers VALUES (?, ?)", list(self._pending.items())
                )
            self._pending.clear()

    def close(self) -> None:
        self.flush()
        self._db.close()


def _key(kind: str, *parts: str) -> str:
    return hashlib.sha1("\x1f".join([kind, *parts]).encode()).hexdigest()


def _charge(ledger: TokenLedger | None, usage: TokenUsage, what: str) -> None:
    """Charge a replayed answer's recorded usage, under the same hold-then-commit a real call makes."""
    if ledger is None:
        return
    with ledger.hold(usage.total, what) as held:
        held.commit(usage)


class ReplayVLM(BaseVLM):
    """``inner`` with every probe, scoring and relevance map memoised in ``store``."""

    def __init__(self, inner: VLM, store: ReplayStore) -> None:
        self.inner = inner
        self.store = store
        self.model_id = inner.model_id
        self.profile = inner.profile

    @staticmethod
    def _bypass(ledger: TokenLedger | None) -> bool:
        budget = ledger.budget if ledger is not None else None
        return budget is not None and (
            budget.prune is not None or budget.max_visual_tokens_per_image is not None
        )

    def probe_views(
        self,
        views: Sequence[Image.Image],
        questions: Sequence[Sequence[str]],
        ledger: TokenLedger | None = None,
        *,
        reuse_prefix: bool = True,
    ) -> list[list[YesNoResult]]:
        if self._bypass(ledger):
            return self.inner.probe_views(views, questions, ledger, reuse_prefix=reuse_prefix)
        digests = [view_digest(v) for v in views]
        keys = [[_key("probe", d, q) for q in qs] for d, qs in zip(digests, questions, strict=True)]
        raws = [[self.store.get(k) for k in row] for row in keys]
        if all(raw is not None for row in raws for raw in row):
            out = [[YesNoResult.model_validate_json(raw) for raw in row if raw is not None] for row in raws]
            self._set_passes(out, questions, reuse_prefix)
            _charge(ledger, TokenUsage.sum(r.usage for row in out for r in row), "probe_views (replayed)")
            return out
        # any answer missing: the whole call runs, so its forward passes and tokens are a real call's
        fresh = self.inner.probe_views(views, questions, ledger, reuse_prefix=reuse_prefix)
        for row_keys, results in zip(keys, fresh, strict=True):
            for key, result in zip(row_keys, results, strict=True):
                self.store.put(key, result.model_dump_json().encode())
        return fresh

    def _set_passes(
        self, out: list[list[YesNoResult]], questions: Sequence[Sequence[str]], reuse_prefix: bool
    ) -> None:
        """Book the forward passes a real call of this composition makes on its first answer: two per chunk
        of views on the shared-prefix path, one per chunk of probes otherwise (``TransformersVLM``)."""
        size = self.profile.max_batch_size
        if reuse_prefix and self.profile.prefix_reuse and any(len(qs) > 1 for qs in questions):
            passes = 2 * -(-sum(1 for qs in questions if qs) // size)
        else:
            passes = -(-sum(len(qs) for qs in questions) // size)
        first = True
        for row in out:
            for j, result in enumerate(row):
                row[j] = result.model_copy(
                    update={
                        "usage": result.usage.model_copy(update={"forward_passes": passes if first else 0})
                    }
                )
                first = False

    def score(
        self, request: VLMRequest, options: Sequence[str], ledger: TokenLedger | None = None
    ) -> ScoreResult:
        if self._bypass(ledger) or request.budget is not None:
            return self.inner.score(request, options, ledger)
        key = _key("score", _request_digest(request), json.dumps(list(options)))
        raw = self.store.get(key)
        if raw is not None:
            result = ScoreResult.model_validate_json(raw)
            _charge(ledger, result.usage, "score (replayed)")
            return result
        result = self.inner.score(request, options, ledger)
        self.store.put(key, result.model_dump_json().encode())
        return result

    def generate(self, request: VLMRequest, ledger: TokenLedger | None = None) -> VLMResult:
        return self.inner.generate(request, ledger)

    def relevance_maps(
        self,
        views: Sequence[Image.Image],
        questions: Sequence[str],
        ledger: TokenLedger | None = None,
        *,
        normalize: bool = True,
    ) -> list[RelevanceMap]:
        if self._bypass(ledger):
            return self.inner.relevance_maps(views, questions, ledger, normalize=normalize)
        keys = [
            _key("relevance", view_digest(v), q, str(normalize))
            for v, q in zip(views, questions, strict=True)
        ]
        raws = [self.store.get(k) for k in keys]
        if all(raw is not None for raw in raws):
            maps = [_map_from_bytes(raw) for raw in raws if raw is not None]
            for i, rel in enumerate(maps):  # one pass for the whole call, as the backend books it
                rel.usage = rel.usage.model_copy(update={"forward_passes": 1 if i == 0 else 0})
            _charge(ledger, TokenUsage.sum(m.usage for m in maps), "relevance_maps (replayed)")
            return maps
        maps = self.inner.relevance_maps(views, questions, ledger, normalize=normalize)
        for key, rel in zip(keys, maps, strict=True):
            self.store.put(key, _map_to_bytes(rel))
        return maps


def _request_digest(request: VLMRequest) -> str:
    """The request's text and every image's digest, in order."""
    parts: list[str] = []
    for message in request.messages:
        parts.append(message.role)
        for part in message.content:
            parts.append(view_digest(part.image) if isinstance(part, ImagePart) else part.text)
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()


def _map_to_bytes(rel: RelevanceMap) -> bytes:
    buffer = io.BytesIO()
    np.savez(
        buffer,
        grid=rel.grid,
        region=np.array(rel.region),
        usage=np.frombuffer(rel.usage.model_dump_json().encode(), dtype=np.uint8),
    )
    return buffer.getvalue()


def _map_from_bytes(raw: bytes) -> RelevanceMap:
    data = np.load(io.BytesIO(raw))
    region = tuple(float(v) for v in data["region"])
    return RelevanceMap(
        grid=data["grid"],
        region=(region[0], region[1], region[2], region[3]),
        usage=TokenUsage.model_validate_json(data["usage"].tobytes()),
    )

"""The insight memory's whole recall path at scale, on real lessons embedded by MiniLM (issue 24, item 6).

``benchmarks.memory`` measures the vector index alone on synthetic vectors; this page measures what a user's
recall pays: ``InsightMemory.search`` (the catch-up check, the index search, the database rows read back,
the namespace filter) over a store of ``n`` insights, on SQLite and on PostgreSQL, with the query's
embedding already made (its cost is printed apart: it does not grow with the store).

The insights are lessons written by foveate's own ``RuleInsightExtractor`` from generated runs: free-text
questions of the kinds users ask about large images (documents, charts, aerial, screenshots), outcomes,
crops and confidences drawn at random; every text distinct; embedded with all-MiniLM-L6-v2 (the default
embedder). A tenth as many insights are stored under a second namespace in the same database, so the
namespace filter has rows to drop. Queries are other lessons (another seed) as a run would recall with.
Recall@10 is against exact inner-product search over the namespace's own vectors.

Embedding is the slow part on a CPU (8 ms per lesson on 2 cores in batches of 64, 15 in batches of 512: 13
minutes per 100,000, over 2 hours per million); ``--cache`` keeps the vectors in files of ``CHUNK`` lessons
named by the sha256 of their texts, each stamped with the sha256 of the embedder's weights and code, and
refuses a file made by others. A run stopped part way keeps the chunks it finished, so ``--embed-only``
(fill the cache, measure nothing) can be run at low priority, stopped and resumed.

    python -m benchmarks.recall_path --sizes 100000 --postgres postgresql+psycopg://foveate@127.0.0.1:PORT/db
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sentence_transformers
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from benchmarks import sources_sha256, weights_sha256, write_page
from foveate.insights import RuleInsightExtractor, Trajectory
from foveate.memory import InsightMemory, SentenceTransformerEmbedder, embeddings
from foveate.memory.embeddings import minilm_path

K = 10
OTHER_SHARE = 0.1
"""Insights of the second namespace, as a share of the measured one's."""
BATCH = 5000
"""Insights per ``add_many`` (one transaction each)."""
CHUNK = 20_000
"""Lessons per cache file (under 3 minutes of embedding on 2 cores)."""


def _names(text: str) -> list[str]:
    return text.split("|")


OBJECTS = _names(
    "sign|label|price tag|license plate|street sign|bus|truck|car|bicycle|boat|plane|helicopter|tree|"
    "house|roof|window|door|chimney|fence|bench|lamp post|traffic light|bottle|cup|mug|book|laptop|"
    "keyboard|mouse|phone|clock|watch|poster|flag|banner|umbrella|backpack|handbag|suitcase|hat|"
    "shirt|jacket|shoe|dog|cat|bird|horse|cow|sheep|person|child|player|referee|runner|ship|"
    "container|crane|tank|silo|field|road|bridge|river|parking lot|pool|court|stadium|runway|tower|"
    "antenna|solar panel|wind turbine|cell|nucleus|colony|fibre|vessel|particle|crystal|grain|pore|"
    "defect|scratch|bubble|droplet|button|icon|menu|checkbox|slider|tab|dialog|toolbar|scrollbar|"
    "cursor|link|field label|table cell|legend|axis label|bar|line|marker|pie slice|footnote|header|"
    "signature|stamp|logo|barcode|QR code|invoice number|total|date|address|name|serial number|"
    "page number|caption|title|subtitle|paragraph"
)
PLACES = _names(
    "|in the top left corner|in the top right corner|at the bottom|near the centre|on the left|"
    "on the right|in the background|in the foreground|on the shelf|on the table|on the wall|"
    "behind the fence|next to the door|under the bridge|on the roof|along the road|in the second row|"
    "in the last column|in the lower panel|in the upper chart|on page two|in the sidebar|"
    "in the footer|in the header|near the river|at the harbour|in the car park|on the runway|"
    "in the field|at the edge of the image|in the inset|in the zoomed region|in the third lane|"
    "by the entrance"
)
TEMPLATES = (
    "What is the color of the {o} {p}?",
    "What is written on the {o} {p}?",
    "How many {o}s are there {p}?",
    "Is the {o} {p} to the left or to the right of the {o2}?",
    "What number is shown on the {o} {p}?",
    "What shape is the {o} {p}?",
    "Which is larger, the {o} or the {o2} {p}?",
    "What is the material of the {o} {p}?",
    "Is there a {o} {p}?",
    "What does the {o} {p} say?",
)
STRATEGIES = ("direct", "zoomeye", "fast")


def runs(seed: int) -> Iterator[Trajectory]:
    """Endless generated runs: a question, its cues (or none), an outcome, the crop it was answered from."""
    rng = random.Random(seed)
    while True:
        o, o2 = rng.sample(OBJECTS, 2)
        place = rng.choice(PLACES)
        question = " ".join(rng.choice(TEMPLATES).format(o=o, o2=o2, p=place).split()).replace(" ?", "?")
        cues = [o] if rng.random() < 0.5 else []
        width, height = rng.randrange(800, 8000), rng.randrange(600, 6000)
        zoomed = rng.random() < 0.7
        box = None
        if zoomed:
            w, h = rng.randrange(64, max(65, width // 3)), rng.randrange(64, max(65, height // 3))
            x, y = rng.randrange(0, width - w), rng.randrange(0, height - h)
            box = (x, y, x + w, y + h)
        yield Trajectory(
            question=question,
            correct=rng.random() < 0.7,
            strategy=rng.choice(STRATEGIES),
            cues=cues,
            image_size=(width, height),
            answer_box=box,
            confidence=round(rng.uniform(0.3, 0.99), 2) if rng.random() < 0.6 else None,
            probes=rng.randrange(0, 200),
            budget_exhausted=rng.random() < 0.05,
        )


def lessons(n: int, seed: int, exclude: set[str] | None = None) -> list[str]:
    """``n`` distinct lesson texts, in the order they were written (none of ``exclude``)."""
    extractor = RuleInsightExtractor()
    seen: set[str] = set(exclude or ())
    out: list[str] = []
    for run in runs(seed):
        for draft in extractor.extract(run):
            if draft.text not in seen:
                seen.add(draft.text)
                out.append(draft.text)
                if len(out) == n:
                    return out
    raise AssertionError("unreachable: runs() never ends")


class CachedEmbedder:
    """MiniLM, answering from vectors it already made: a stored lesson, or a query embedded beforehand."""

    def __init__(self, inner: SentenceTransformerEmbedder, texts: Sequence[str], vectors: np.ndarray) -> None:
        self.inner = inner
        self.known = {t: i for i, t in enumerate(texts)}
        self.vectors = vectors

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = [self.known.get(t) for t in texts]
        if all(r is not None for r in rows):
            return self.vectors[[r for r in rows if r is not None]]
        return self.inner.embed(texts)


def embedded(
    texts: list[str],
    embedder: SentenceTransformerEmbedder,
    cache: Path | None,
    label: str,
    chunk: int = CHUNK,
) -> np.ndarray:
    """MiniLM vectors of ``texts``; with a ``cache``, chunk by chunk, each read back when a file holds those
    texts made by these weights and code (a file made by others is refused) and written as soon as made."""
    if cache is None:
        return _embed(texts, embedder, label)
    code = {
        "weights": weights_sha256(minilm_path()),
        # the vectors depend on the texts (hashed below), the weights and the embedding code, not on how
        # the texts were generated: editing this file must not throw hours of embedding away
        "code": sources_sha256([Path(embeddings.__file__)], []) + f"+st{sentence_transformers.__version__}",
    }
    cache.mkdir(parents=True, exist_ok=True)
    parts = []
    for start in range(0, len(texts), chunk):
        part = texts[start : start + chunk]
        sha = hashlib.sha256("\n".join(part).encode()).hexdigest()
        stamp = code | {"texts": len(part), "texts_sha256": sha}
        vectors_file, stamp_file = cache / f"{sha[:24]}.npy", cache / f"{sha[:24]}.json"
        if stamp_file.is_file():
            made = json.loads(stamp_file.read_text())
            if made != stamp:
                raise SystemExit(
                    f"{stamp_file} was made by other weights, code or texts ({made} vs {stamp}); "
                    "delete it or pass another --cache"
                )
            parts.append(np.load(vectors_file))
            continue
        where = f"{label} {start:,}-{start + len(part):,} of {len(texts):,}"
        vectors = _embed(part, embedder, where)
        np.save(vectors_file, vectors)
        stamp_file.write_text(json.dumps(stamp))  # last: a stamp vouches for a complete vectors file
        parts.append(vectors)
    return np.concatenate(parts) if parts else np.zeros((0, embedder.dim), np.float32)


def _embed(texts: list[str], embedder: SentenceTransformerEmbedder, what: str) -> np.ndarray:
    start = time.perf_counter()
    vectors = embedder.embed(texts)
    print(f"embedded {what} in {time.perf_counter() - start:.0f} s", flush=True)
    return vectors


@dataclass
class Result:
    database: str
    n: int
    ingest_s: float
    p50_ms: float
    p99_ms: float
    recall: float
    index: str


def exact_top(queries: np.ndarray, vectors: np.ndarray, chunk: int = 50) -> np.ndarray:
    """The rows of ``vectors`` with the ``K`` largest inner products with each query, best first (a chunk
    of queries at a time: a million scores per query)."""
    out = []
    for i in range(0, len(queries), chunk):
        scores = queries[i : i + chunk] @ vectors.T
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out.append(np.take_along_axis(top, order, axis=1))
    return np.concatenate(out)


def fresh_database(kind: str, folder: Path, postgres: str | None, n: int) -> str:
    if kind == "sqlite":
        return str(folder / f"memory-{n}.db")
    assert postgres is not None
    name = f"foveate_recall_{n}_{int(time.time())}"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(postgres).set(database=name).render_as_string(hide_password=False)


def measure(
    kind: str,
    database: str,
    folder: Path,
    embedder: CachedEmbedder,
    stored: list[str],
    vectors: np.ndarray,
    other: list[str],
    queries: list[str],
    query_vectors: np.ndarray,
) -> Result:
    n = len(stored)
    options = {"embedder": embedder, "merge_threshold": None, "save_every": 10**9}
    start = time.perf_counter()
    with InsightMemory.open(
        database, namespace="other", index_path=folder / f"other-{kind}-{n}.faiss", **options
    ) as m:
        for i in range(0, len(other), BATCH):
            m.add_many(other[i : i + BATCH])
    ids: list[int] = []
    index_path = folder / f"default-{kind}-{n}.faiss"
    with InsightMemory.open(database, index_path=index_path, **options) as memory:
        for i in range(0, n, BATCH):
            ids += [r.insight.id for r in memory.add_many(stored[i : i + BATCH])]
        memory.flush()
        ingest = time.perf_counter() - start
        config = memory.index.config
        index = memory.index.kind + (
            f" (M={config.hnsw_m}, efConstruction={config.hnsw_ef_construction}, "
            f"efSearch={config.hnsw_ef_search})"
            if memory.index.kind == "hnsw"
            else ""
        )
        by_row = np.array(ids)
        exact = exact_top(query_vectors, vectors)
        memory.search(queries[0], k=K)  # warm: the first search after a write catches up
        times, hits = [], 0
        for q, truth in zip(queries, exact, strict=True):
            t = time.perf_counter()
            found = memory.search(q, k=K)
            times.append(time.perf_counter() - t)
            hits += len({h.insight.id for h in found} & set(by_row[truth].tolist()))
    return Result(
        kind,
        n,
        ingest,
        float(np.percentile(times, 50) * 1e3),
        float(np.percentile(times, 99) * 1e3),
        hits / (K * len(queries)),
        index,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated insight counts")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--postgres", default=None, help="a PostgreSQL server URL (a database is made on it)")
    parser.add_argument("--cache", type=Path, default=None, help="keep the MiniLM vectors here")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/recall_path.md"))
    parser.add_argument(
        "--embed-only", action="store_true", help="fill --cache with the vectors and stop (resumable)"
    )
    args = parser.parse_args(argv)
    if args.embed_only and args.cache is None:
        parser.error("--embed-only needs --cache")
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    kinds = ["sqlite"] + (["postgresql"] if args.postgres else [])
    # batches of 64 (the embedder's default): 8 ms per lesson on 2 cores, against 15 in batches of 512
    inner = SentenceTransformerEmbedder()
    largest = max(sizes)
    stored_all = lessons(largest, seed=1)
    other_all = lessons(int(largest * OTHER_SHARE), seed=2, exclude=set(stored_all))
    queries = lessons(args.queries, seed=3, exclude=set(stored_all) | set(other_all))
    vectors_all = embedded(stored_all, inner, args.cache, f"stored-{largest}")
    other_vectors = embedded(other_all, inner, args.cache, f"other-{len(other_all)}")
    query_vectors = embedded(queries, inner, args.cache, f"queries-{len(queries)}")
    if args.embed_only:
        return
    single = []
    for q in queries[:200]:  # one query at a time, as a recall embeds it
        t = time.perf_counter()
        inner.embed([q])
        single.append(time.perf_counter() - t)
    embedder = CachedEmbedder(
        inner,
        [*stored_all, *other_all, *queries],
        np.concatenate([vectors_all, other_vectors, query_vectors]),
    )
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for n in sizes:
            other_n = int(n * OTHER_SHARE)
            for kind in kinds:
                database = fresh_database(kind, folder, args.postgres, n)
                result = measure(
                    kind,
                    database,
                    folder,
                    embedder,
                    stored_all[:n],
                    vectors_all[:n],
                    other_all[:other_n],
                    queries,
                    query_vectors,
                )
                print(result, flush=True)
                results.append(result)

    command = "python -m benchmarks.recall_path"
    if sizes != [100000, 1000000]:
        command += f" --sizes {args.sizes}"
    if args.queries != 1000:
        command += f" --queries {args.queries}"
    if args.postgres:
        command += " --postgres URL"
    lines = [
        "# Insight memory end to end: the whole recall path at scale, real lessons, MiniLM",
        "",
        f"Produced by `{command}` on CPU ({platform.machine()}, 2 threads). What is stored and asked, and "
        "why: the module docstring of `benchmarks/recall_path.py`. Each size is a fresh database holding "
        f"n insights in the measured namespace and {OTHER_SHARE:.0%} as many in another; "
        f"{len(queries):,} queries, k = {K}, one at a time. Latency is `InsightMemory.search` with the "
        "query's vector already made; embedding one query with MiniLM costs another "
        f"{np.percentile(single, 50) * 1e3:.1f} ms (p50 over {len(single)}, 2 cores). PostgreSQL: a local "
        "server (fsync off, as in CI) on the same machine.",
        "",
        "| database | insights | index | ingest (s) | ingest (insights/s) | recall p50 (ms) | p99 (ms) "
        "| recall@10 vs exact |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.database} | {r.n:,} | {r.index} | {r.ingest_s:.0f} | {r.n / r.ingest_s:,.0f} "
            f"| {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.recall:.3f} |"
        )
    lines += ["", "## Goal (issue 24): p50 < 5 ms at 1M insights on SQLite, recall@10 >= 0.95", ""]
    at_million = [r for r in results if r.database == "sqlite" and r.n == 1_000_000]
    if at_million:
        r = at_million[0]
        met = r.p50_ms < 5 and r.recall >= 0.95
        lines.append(f"{'Met' if met else 'Not met'}: p50 {r.p50_ms:.2f} ms, recall@10 {r.recall:.3f}.")
    else:
        lines.append(
            "Not measured in this run: 1M was left out (embedding a million lessons takes 2.5-3.5 hours on "
            "2 CPU cores; minutes on a GPU)."
        )
    write_page(args.out, lines)


if __name__ == "__main__":
    main()

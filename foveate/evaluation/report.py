"""``report.md`` and ``accuracy_vs_tokens.png`` from ``results.jsonl`` alone, so every figure can be
recomputed from the lines (and the tests do).

Accuracy is over all questions of an entry (micro), per split and overall, with a 95% percentile bootstrap
interval over questions; each entry also gets its difference from the direct baseline on the same
questions, with a paired bootstrap interval. Costs are means per question; questions per second is the
entry's questions over the wall time its sessions spent on it (first start to last finish, per session).
Grounding, where the benchmark gives boxes: right answers whose answering crop held no target's centre
(right by luck, not by sight).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foveate.evaluation.evaluate import EvalRecord
from foveate.evaluation.protocol import OPTION_LINES, PROTOCOL_LINES, EvalProtocol

__all__ = ["EntrySummary", "bootstrap_interval", "summarise", "write_plot", "write_report"]

RESAMPLES = 2000
SEED = 0  # the bootstrap's own seed: the same results give the same intervals


def bootstrap_interval(values: Sequence[float], *, seed: int = SEED) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of ``values`` (nan, nan when empty)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(RESAMPLES, data.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return (float(low), float(high))


@dataclass(frozen=True)
class Accuracy:
    n: int
    right: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.right / self.n if self.n else float("nan")

    def cell(self) -> str:
        if not self.n:
            return "-"
        return f"{100 * self.value:.1f} ({100 * self.low:.1f}-{100 * self.high:.1f}), n={self.n}"


def accuracy(records: Sequence[EvalRecord]) -> Accuracy:
    scored = [float(bool(r.correct)) for r in records if r.correct is not None]
    low, high = bootstrap_interval(scored)
    return Accuracy(len(scored), int(sum(scored)), low, high)


@dataclass(frozen=True)
class EntrySummary:
    """An entry's figures, as the report prints them."""

    entry: str
    overall: Accuracy
    splits: dict[str, Accuracy]
    vs_direct: tuple[float, float, float] | None  # mean difference and its interval, in accuracy
    probes: float
    forward_passes: float
    visual_tokens: float
    total_tokens: float
    seconds_per_question: float
    questions_per_second: float
    right_with_boxes: int
    right_crop_missed: int
    errors: int


def _wall(records: Sequence[EvalRecord]) -> float:
    by_session: dict[str, list[EvalRecord]] = defaultdict(list)
    for r in records:
        by_session[r.session].append(r)
    return sum(max(r.finished for r in rs) - min(r.started for r in rs) for rs in by_session.values())


def _paired(records: Sequence[EvalRecord], direct: Sequence[EvalRecord]) -> tuple[float, float, float] | None:
    base = {r.question_id: r.correct for r in direct if r.correct is not None}
    diffs = [
        float(bool(r.correct)) - float(bool(base[r.question_id]))
        for r in records
        if r.correct is not None and r.question_id in base
    ]
    if not diffs:
        return None
    low, high = bootstrap_interval(diffs)
    return (float(np.mean(diffs)), low, high)


def summarise(records: Sequence[EvalRecord]) -> list[EntrySummary]:
    """One summary per entry, in the order entries first appear (direct first)."""
    by_entry: dict[str, list[EvalRecord]] = defaultdict(list)
    # questions in id order: answers finish in any order when several are in flight, and the bootstrap
    # must resample the same sequence to give the same interval for the same results
    for r in sorted(records, key=lambda r: r.question_id):
        by_entry[r.entry].append(r)
    first = list(dict.fromkeys(r.entry for r in records))
    by_entry = {entry: by_entry[entry] for entry in first}
    direct = by_entry.get("direct", [])
    splits = sorted({r.split for r in records})
    out = []
    for entry, rows in by_entry.items():
        ok = [r for r in rows if r.error is None]
        wall = _wall(rows)

        def mean(f: Callable[[EvalRecord], float], ok: list[EvalRecord] = ok) -> float:
            return float(np.mean([f(r) for r in ok])) if ok else float("nan")

        boxed_right = [r for r in rows if r.correct and r.targets]
        out.append(
            EntrySummary(
                entry=entry,
                overall=accuracy(rows),
                splits={s: accuracy([r for r in rows if r.split == s]) for s in splits},
                vs_direct=None if entry == "direct" else _paired(rows, direct),
                probes=mean(lambda r: r.probes),
                forward_passes=mean(lambda r: r.forward_passes),
                visual_tokens=mean(lambda r: r.visual_tokens),
                total_tokens=mean(lambda r: r.total_tokens),
                seconds_per_question=mean(lambda r: r.latency_s),
                questions_per_second=len(rows) / wall if wall > 0 else float("nan"),
                right_with_boxes=len(boxed_right),
                right_crop_missed=sum(1 for r in boxed_right if r.grounded is False),
                errors=len(rows) - len(ok),
            )
        )
    return out


def _pct(x: float) -> str:
    return f"{100 * x:+.1f}"


def write_report(
    out: Path,
    protocol: EvalProtocol,
    records: Sequence[EvalRecord],
    *,
    command: str,
    concurrency: int,
    how: str = "",
) -> str:
    """Write ``report.md`` from the records and return its text."""
    summaries = summarise(records)
    splits = sorted({r.split for r in records})
    entries = protocol.entries
    lines = [
        f"# foveate eval: {protocol.format} ({protocol.path})",
        "",
        f"Command: `{command}`",
        "",
        "## Protocol",
        "",
        f"- Model: {protocol.model_id}. Input resolution: {protocol.resolution}.",
        f"- Budget per question: {protocol.budget or 'none'}.",
        f"- Questions: {len({r.question_id for r in records})}"
        + (f" (--limit {protocol.limit}, taken from each split in turn)" if protocol.limit else "")
        + f"; {concurrency} in flight in the last session"
        + (f" ({how})" if how else "")
        + ".",
        *(f"- {line}" for line in (PROTOCOL_LINES[0], OPTION_LINES[protocol.options], *PROTOCOL_LINES[1:])),
        "- Entries: "
        + "; ".join(
            f"`{label}` = workflow {key.workflow} (strategies: {key.strategy})"
            for label, key in entries.items()
        )
        + ".",
        "",
        "## Accuracy (%, 95% bootstrap interval)",
        "",
        "| entry | overall | " + " | ".join(splits) + " | vs direct (paired) |",
        "|---|---|" + "---|" * len(splits) + "---|",
    ]
    for s in summaries:
        diff = (
            "-"
            if s.vs_direct is None
            else f"{_pct(s.vs_direct[0])} ({_pct(s.vs_direct[1])} to {_pct(s.vs_direct[2])})"
        )
        lines.append(
            f"| {s.entry} | {s.overall.cell()} | "
            + " | ".join(s.splits[x].cell() for x in splits)
            + f" | {diff} |"
        )
    lines += [
        "",
        "## Cost (means per question)",
        "",
        "| entry | probes | forward passes | visual tokens | total tokens | s / question | questions / s "
        "| errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.entry} | {s.probes:.1f} | {s.forward_passes:.1f} | {s.visual_tokens:.0f} "
            f"| {s.total_tokens:.0f} | {s.seconds_per_question:.2f} | {s.questions_per_second:.2f} "
            f"| {s.errors} |"
        )
    if any(r.targets for r in records):
        lines += [
            "",
            "## Grounding (where the benchmark gives target boxes)",
            "",
            "A right answer whose answering crop holds no target's centre was right without seeing the "
            "target.",
            "",
            "| entry | right answers with boxes | of them, crop missed every target |",
            "|---|---|---|",
        ]
        for s in summaries:
            lines.append(f"| {s.entry} | {s.right_with_boxes} | {s.right_crop_missed} |")
    errors = [r for r in records if r.error]
    if errors:
        lines += ["", "## Errors", ""]
        lines += [f"- `{r.entry}` {r.question_id}: {r.error}" for r in errors[:20]]
        if len(errors) > 20:
            lines.append(f"- ... and {len(errors) - 20} more (results.jsonl has them all)")
    lines += [
        "",
        "Every figure above is computed from `results.jsonl` (one line per question and entry) by "
        "`foveate.evaluation.report`; `accuracy_vs_tokens.png` plots the overall accuracy against total "
        "tokens.",
        "",
    ]
    text = "\n".join(lines)
    (out / "report.md").write_text(text, encoding="utf-8")
    return text


def write_plot(path: Path, records: Sequence[EvalRecord], title: str) -> None:
    """Overall accuracy (with its interval) against mean total tokens per question, one point per entry."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display is needed or wanted
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for s in summarise(records):
        if not s.overall.n:
            continue
        acc = 100 * s.overall.value
        err = [[acc - 100 * s.overall.low], [100 * s.overall.high - acc]]
        ax.errorbar([s.total_tokens], [acc], yerr=err, fmt="o", capsize=4, label=s.entry)
        ax.annotate(s.entry, (s.total_tokens, acc), textcoords="offset points", xytext=(6, 4))
    tokens = [s.total_tokens for s in summarise(records) if s.total_tokens > 0]
    if tokens and max(tokens) > 10 * min(tokens):
        ax.set_xscale("log")  # a whole-image answer and a search differ by orders of magnitude
    ax.set_xlabel("total tokens per question (mean)")
    ax.set_ylabel("accuracy, % (95% bootstrap interval)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

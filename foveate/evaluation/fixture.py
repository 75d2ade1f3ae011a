"""How the embedded tiny VLM behaves: sharp on crops, blind to small targets in whole images, in each world.

``evaluate_fixture`` measures, on held-out synthetic scenes and through the public ``TransformersVLM`` (the
same path as any hub model), in the plain world (targets are the only saturated objects) and in the harder
one (``foveate.synthetic.HARD``: saturated distractors, photograph or texture backgrounds):

- accuracy when shown the crop that holds the targets at the model's native resolution;
- accuracy on the whole image (the gap zoom search has to close);
- the AUROC of the existence probe's P(Yes) on crops (a present target against an absent object; in the
  harder world half the absent objects are confusers: the target's colour on an absent shape, or its
  shape in an absent colour);
- all of it by question category and by target size.

The page measures several evaluation seeds (``EVAL_SEEDS``; seed 7 chose among trained candidates, so it is
a tuning seed and not one of them) and holds the pooled measures, which are the means over seeds since each
seed has ``n`` scenes, against the bars of issue 28: in the harder world crop accuracy >= 0.90 in each
category, whole-image accuracy <= 0.50, existence AUROC >= 0.95; in the plain world no bar more than 2
points worse than the weights shipped before the harder world, measured on the same seeds (``PREVIOUS``).
Each pooled measure carries a 95% percentile bootstrap interval over scenes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from foveate.synthetic import COLORS, PLAIN, SHAPES, SceneItem, SceneObject, World, generate_scene, union_box
from foveate.tiny_vlm import model_label
from foveate.tiny_vlm.tasks import EXISTENCE, object_name, scene_objects
from foveate.vlm import TransformersVLM, VLMRequest

SIZE_BINS = ((10, 20), (20, 40), (40, 61))

#: The seeds the page reports on: not used in training (1000, 1001, 2000, 3000-9001 for the harder-world
#: phases) nor in choosing among candidates (7, the page's seed before these).
EVAL_SEEDS = (17, 27, 37)
TUNING_SEED = 7

#: The plain world's measures of the weights shipped before the harder world existed (those of commit
#: 3e29aab), on ``EVAL_SEEDS`` with 300 scenes each (``foveate bench fixture --n 300 --worlds plain`` with
#: this module as committed with these numbers; per seed crop 0.987 / 1.000 / 0.993, whole 0.407 / 0.387 /
#: 0.397, AUROC 0.984 / 0.981 / 0.978): the new weights may not be more than 2 points worse on any of them.
PREVIOUS = {"crop": 0.993, "whole": 0.397, "auroc": 0.981}
SLACK = 0.02
RESAMPLES = 1000


def auroc(scores_pos: list[float], scores_neg: list[float]) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    pos, neg = np.asarray(scores_pos)[:, None], np.asarray(scores_neg)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


def native_crop(image: Image.Image, item: SceneItem, native: int) -> Image.Image:
    """The smallest square of side >= ``native`` centred on the targets (clamped to the image)."""
    x0, y0, x1, y1 = union_box(item)
    side = min(max(native, int((max(x1 - x0, y1 - y0)) * 1.25)), image.width, image.height)
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    left = min(max(0, cx - side // 2), image.width - side)
    top = min(max(0, cy - side // 2), image.height - side)
    return image.crop((left, top, left + side, top + side))


def _met(flag: bool) -> str:
    return "yes" if flag else "**no**"


@dataclass(frozen=True)
class SceneOutcome:
    """What the model did on one scene."""

    seed: int
    category: str
    size: str  # the SIZE_BINS label of the largest target
    crop_ok: bool
    whole_ok: bool
    p_present: float  # P(Yes) asked about a target, on the crop
    p_absent: float  # P(Yes) asked about an object the scene does not hold, on the crop


def _accuracy(outcomes: list[SceneOutcome], attr: str) -> float:
    return float(np.mean([getattr(o, attr) for o in outcomes])) if outcomes else float("nan")


def _summary(outcomes: list[SceneOutcome]) -> tuple[float, float, int]:
    return _accuracy(outcomes, "crop_ok"), _accuracy(outcomes, "whole_ok"), len(outcomes)


def _sorted_auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """``auroc`` in O(n log n) (each positive against the sorted negatives): fast enough to bootstrap."""
    ordered = np.sort(neg)
    below = np.searchsorted(ordered, pos, side="left")
    tied = np.searchsorted(ordered, pos, side="right") - below
    return float((below + 0.5 * tied).sum() / (pos.size * neg.size))


@dataclass
class FixtureReport:
    """One world's measures, over one seed's scenes or several seeds' pooled."""

    world: str
    outcomes: list[SceneOutcome] = field(default_factory=list)

    @property
    def n(self) -> int:
        """Scenes per seed."""
        return len(self.outcomes) // max(1, len(self.seeds))

    @property
    def seeds(self) -> list[int]:
        return sorted({o.seed for o in self.outcomes})

    @property
    def crop_accuracy(self) -> float:
        return _accuracy(self.outcomes, "crop_ok")

    @property
    def whole_accuracy(self) -> float:
        return _accuracy(self.outcomes, "whole_ok")

    @property
    def existence_auroc(self) -> float:
        return auroc([o.p_present for o in self.outcomes], [o.p_absent for o in self.outcomes])

    @property
    def by_category(self) -> dict[str, tuple[float, float, int]]:
        names = sorted({o.category for o in self.outcomes})
        return {k: _summary([o for o in self.outcomes if o.category == k]) for k in names}

    @property
    def by_size(self) -> dict[str, tuple[float, float, int]]:
        labels = [f"{lo}-{hi - 1}" for lo, hi in SIZE_BINS]
        groups = {k: [o for o in self.outcomes if o.size == k] for k in labels}
        return {k: _summary(v) for k, v in groups.items() if v}

    def per_seed(self) -> list[FixtureReport]:
        return [FixtureReport(self.world, [o for o in self.outcomes if o.seed == s]) for s in self.seeds]

    def interval(self, measure: str, category: str | None = None) -> tuple[float, float]:
        """95% percentile bootstrap interval over scenes (resampled within each seed) of ``measure``
        (``crop``, ``whole`` or ``auroc``), on one category's scenes when ``category`` is given."""
        rows = [o for o in self.outcomes if category is None or o.category == category]
        rng = np.random.default_rng(0)
        by_seed = [np.array([i for i, o in enumerate(rows) if o.seed == s]) for s in self.seeds]
        if measure == "auroc":
            values = np.array([[o.p_present, o.p_absent] for o in rows])
        else:
            values = np.array([float(getattr(o, f"{measure}_ok")) for o in rows])
        stats = []
        for _ in range(RESAMPLES):
            pick = np.concatenate([idx[rng.integers(0, idx.size, idx.size)] for idx in by_seed])
            if measure == "auroc":
                stats.append(_sorted_auroc(values[pick, 0], values[pick, 1]))
            else:
                stats.append(float(values[pick].mean()))
        low, high = np.percentile(stats, [2.5, 97.5])
        return float(low), float(high)

    def goals(self) -> list[tuple[str, str, str, bool]]:
        """``(measure, value, goal, met)`` rows: issue 28's bars for this world."""
        if self.world == "plain":
            crop_bar, whole_bar, auroc_bar = (
                PREVIOUS["crop"] - SLACK,
                PREVIOUS["whole"] + SLACK,
                PREVIOUS["auroc"] - SLACK,
            )
            rows = [("crop accuracy", self.crop_accuracy, crop_bar, ">=", self.interval("crop"))]
        else:
            crop_bar, whole_bar, auroc_bar = 0.90, 0.50, 0.95
            rows = [
                (f"crop accuracy, {k}", v[0], crop_bar, ">=", self.interval("crop", k))
                for k, v in self.by_category.items()
            ]
        rows += [
            ("whole-image accuracy", self.whole_accuracy, whole_bar, "<=", self.interval("whole")),
            ("existence AUROC on crops", self.existence_auroc, auroc_bar, ">=", self.interval("auroc")),
        ]
        return [
            (
                name,
                f"{value:.3f} [{low:.3f}, {high:.3f}]",
                f"{op} {bar:.3f}",
                value >= bar - 1e-12 if op == ">=" else value <= bar + 1e-12,
            )
            for name, value, bar, op, (low, high) in rows
        ]


def evaluate_fixture(
    vlm: TransformersVLM, n: int = 300, seed: int = 7, native: int = 128, world: World = PLAIN
) -> FixtureReport:
    """One world's measures on ``n`` scenes of ``seed`` (the same targets and questions in every world)."""
    rng = np.random.default_rng(seed)
    outcomes: list[SceneOutcome] = []
    for index in range(n):
        image, item = generate_scene(seed, index, world=world)
        crop = native_crop(image, item, native)
        crop_best = vlm.score(VLMRequest.from_prompt(item.question, [crop]), item.options).best
        whole_best = vlm.score(VLMRequest.from_prompt(item.question, [image]), item.options).best
        size = max(t.size for t in item.targets)
        label = next(f"{lo}-{hi - 1}" for lo, hi in SIZE_BINS if lo <= size < hi)
        present = item.targets[int(rng.integers(len(item.targets)))]
        absent = _absent(rng, item, present)
        probes = [
            VLMRequest.from_prompt(EXISTENCE.format(obj=object_name(present)), [crop]),
            VLMRequest.from_prompt(EXISTENCE.format(obj=absent), [crop]),
        ]
        yes_present, yes_absent = vlm.yes_probabilities(probes)
        outcomes.append(
            SceneOutcome(
                seed=seed,
                category=item.category,
                size=label,
                crop_ok=crop_best == item.answer,
                whole_ok=whole_best == item.answer,
                p_present=yes_present.p_yes,
                p_absent=yes_absent.p_yes,
            )
        )
    return FixtureReport(world=world.name, outcomes=outcomes)


def evaluate_seeds(vlm: TransformersVLM, n: int, seeds: Sequence[int], world: World = PLAIN) -> FixtureReport:
    """One world's measures on ``n`` scenes of each seed, pooled."""
    outcomes: list[SceneOutcome] = []
    for seed in seeds:
        outcomes += evaluate_fixture(vlm, n=n, seed=seed, world=world).outcomes
    return FixtureReport(world=world.name, outcomes=outcomes)


def _absent(rng: np.random.Generator, item: SceneItem, present: SceneObject) -> str:
    """An object the scene does not hold. Plain world: any colour no target has, on any shape (the draws of
    the page before the harder world). Harder world: nothing in the scene answers to it, and half the time
    it is a confuser of ``present`` (its colour on another shape, or its shape in another colour)."""
    if not item.distractors:
        absent_color = [c for c in COLORS if c not in {t.color for t in item.targets}]
        return (
            f"{absent_color[int(rng.integers(len(absent_color)))]} {SHAPES[int(rng.integers(len(SHAPES)))]}"
        )
    taken = {(o.color, o.shape) for o in scene_objects(item)}
    color, shape = present.color, present.shape
    confusers = [f"{color} {s}" for s in SHAPES if (color, s) not in taken]
    confusers += [f"{c} {shape}" for c in COLORS if (c, shape) not in taken]
    anything = [f"{c} {s}" for c in COLORS for s in SHAPES if (c, s) not in taken]
    pool = confusers if confusers and rng.random() < 0.5 else anything
    return pool[int(rng.integers(len(pool)))]


def markdown(reports: list[FixtureReport], command: str, model: str) -> str:
    """The page: each world's goals, then the measures side by side by category and by target size."""
    n = reports[0].n
    seeds = reports[0].seeds
    names = [r.world for r in reports]
    lines = [
        "# The embedded tiny VLM on held-out synthetic scenes",
        "",
        f"Produced by `{command}` with model `{model}` on {n} held-out scenes of each of seeds "
        f"{', '.join(map(str, seeds))}, per world ({', '.join(names)}: the same targets and questions in "
        "each). Values are pooled over the seeds (the mean of the seeds' values, as each has the same "
        "scenes count) with a 95% bootstrap interval over scenes in brackets.",
        "",
    ]
    for report in reports:
        lines += [
            f"## {report.world} world: goals",
            "",
            "| measure | value [95% interval] | goal | met |",
            "|---|---|---|---|",
        ]
        lines += [f"| {name} | {value} | {goal} | {_met(ok)} |" for name, value, goal, ok in report.goals()]
        lines.append("")
    lines += [
        "## By seed",
        "",
        "| world | seed | crop | whole | existence AUROC | n |",
        "|---|---|---|---|---|---|",
    ]
    for report in reports:
        lines += [
            f"| {report.world} | {r.seeds[0]} | {r.crop_accuracy:.3f} | {r.whole_accuracy:.3f} | "
            f"{r.existence_auroc:.3f} | {len(r.outcomes)} |"
            for r in report.per_seed()
        ]
    lines.append("")
    header = " | ".join(f"{w} crop | {w} whole" for w in names)
    rule = "|".join("---|---" for _ in names)
    for title, key, attr in (
        ("By question category", "category", "by_category"),
        ("By target size (largest target side, px)", "target size", "by_size"),
    ):
        lines += [f"## {title}", "", f"| {key} | {header} | n |", f"|---|{rule}|---|"]
        for row in getattr(reports[0], attr):
            cells = " | ".join(
                f"{getattr(r, attr)[row][0]:.3f} | {getattr(r, attr)[row][1]:.3f}" for r in reports
            )
            lines.append(f"| {row} | {cells} | {getattr(reports[0], attr)[row][2]} |")
        lines.append("")
    lines += [
        "| overall | "
        + " | ".join(f"{r.crop_accuracy:.3f} | {r.whole_accuracy:.3f}" for r in reports)
        + f" | {len(reports[0].outcomes)} |",
        "",
        "Chance is 0.25 for attribute questions (4 options) and 0.50 for relation questions (2 options).",
        "The crop is the smallest square of side >= 128 px (the model's input) around all targets; the",
        "whole image is 1536-2048 px a side, so a 10-60 px target becomes 1-5 px once the model",
        "shrinks it. The plain world's goals: no more than 2 points worse than the weights shipped before",
        f"the harder world, measured on seeds {', '.join(map(str, EVAL_SEEDS))} with 300 scenes each (crop "
        f"{PREVIOUS['crop']:.3f}, whole {PREVIOUS['whole']:.3f}, AUROC {PREVIOUS['auroc']:.3f}); the harder "
        "world's: crop >= 0.90 in each category, whole <= 0.50, AUROC >= 0.95 (half its absent objects are",
        "confusers of the present target).",
        "Training used scene seeds 1000 and 1001 (train), 2000 (held-out during training) and 3000-9001",
        f"(the harder-world phases); seed {TUNING_SEED} chose among trained candidates, so the page reports "
        "other seeds.",
    ]
    return "\n".join(lines) + "\n"


def write_fixture_report(
    model: Path, out: Path, n: int, seeds: Sequence[int], command: str, worlds: list[World]
) -> list[FixtureReport]:
    """Measure ``model`` on ``n`` scenes of each seed in each world and write the page to ``out``."""
    vlm = TransformersVLM(model)
    reports = [evaluate_seeds(vlm, n, seeds, world) for world in worlds]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(reports, command, model_label(model)))
    return reports

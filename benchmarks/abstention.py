"""Calibrated abstention with the tiny VLM on synthetic scenes: ``python -m benchmarks.abstention``.

Two answering modes, ``direct`` (whole image) and ``zoom`` (ZoomAgent strategy ``zoomeye``), give option
probabilities for the same questions. Attribute questions have 4 options and relation questions 2; both are
pooled by padding relation rows with two zero-probability options. Padding changes no real option's LAC or
APS score (a zero adds no mass), and a zero option scores 1 under both, so it can only enter a set whose
threshold is >= 1, which already holds every real option: no singleton, hence no answer, ever depends on
the padding (set sizes below count real options only). Each of R random splits calibrates on one half of
the questions and tests on the other; the page reports means and standard deviations over splits.
An abstention is never counted as a correct answer.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from benchmarks import DEFAULT_WORLDS, parse_worlds, sources_sha256, weights_sha256, worlds_option, write_page
from benchmarks.zoom import EVAL_SEEDS, TUNING_SEEDS
from foveate.conformal import (
    ScoreConfig,
    auroc,
    calibrate,
    crc_threshold,
    fit_abstention_policy,
    ltt_threshold,
    risk_coverage_curve,
    selective_report,
    singleton_answers,
)
from foveate.errors import ConformalError
from foveate.synthetic import PLAIN, World, generate_scene
from foveate.tiny_vlm import TINY_VLM_PATH, model_label
from foveate.vlm.transformers_vlm import TransformersVLM
from foveate.zoom import ZoomAgent, ZoomConfig, wording_cues

K = 4
MODES = {"direct": ZoomConfig(strategy="direct"), "zoom": ZoomConfig(strategy="zoomeye")}
COVERAGES = np.round(np.arange(0.1, 1.01, 0.1), 1)
Arr = npt.NDArray[np.float64]
SETS, CRC = "P(y in set) >= 1 - alpha", "P(answered & wrong) <= alpha"
LTT = "P(wrong \\| answered) <= alpha w.p. 1 - delta"
METHODS = ("always answer", "LAC", "APS", "CRC", "LTT", "learned + CRC", "learned + LTT")
GUARANTEES = dict(zip(METHODS, ("none", SETS, SETS, CRC, LTT, CRC, LTT), strict=True))
Data = dict[str, dict[str, np.ndarray]]
"""Per world name, ``collect``'s arrays."""


def collect(vlm: TransformersVLM, n: int, seed: int, world: World = PLAIN) -> dict[str, np.ndarray]:
    """Padded (n, K) probabilities per mode, true option indices and categories, in one world."""
    agents = {mode: ZoomAgent(vlm, config) for mode, config in MODES.items()}
    probs = {mode: np.zeros((n, K)) for mode in MODES}
    labels, options, categories = np.zeros(n, int), np.zeros(n, int), []
    for i in range(n):
        image, item = generate_scene(seed, i, world=world)
        if i % 10 == 0:
            print(f"{world.name} world: scene {i}/{n}", file=sys.stderr, flush=True)
        for mode, agent in agents.items():
            result = agent.run(image, item.question, item.options, cues=wording_cues(item.question))
            p = np.asarray(result.probabilities, dtype=np.float64)
            probs[mode][i, : p.size] = p / p.sum()
        labels[i], options[i] = item.answer_index, len(item.options)
        categories.append(item.category)
    return {
        **{f"probs_{m}": probs[m] for m in MODES},
        "labels": labels,
        "options": options,
        "categories": np.array(categories),
    }


def _auroc(confidence: Arr, correct: npt.NDArray[np.bool_]) -> float:
    try:
        return auroc(confidence, correct)
    except ConformalError:  # every test answer right (or wrong): undefined
        return float("nan")


def evaluate(
    probs: Arr, labels: np.ndarray, options: np.ndarray, alpha: float, delta: float, splits: int, seed: int
) -> dict[str, dict[str, list[float]]]:
    """Per method, per metric: one value per random calibration/test split."""
    n = labels.shape[0]
    top = probs.argmax(axis=1)
    correct = top == labels
    ordered = -np.sort(-probs, axis=1)
    margin = ordered[:, 0] - ordered[:, 1]
    real = np.arange(K)[None, :] < options[:, None]
    out: dict[str, dict[str, list[float]]] = {}

    def record(method: str, answers: np.ndarray, test: np.ndarray, **extra: float) -> None:
        rep = selective_report(answers, labels[test])
        values = {
            "answered": rep.answered_rate,
            "sel_acc": rep.selective_accuracy,
            "wrong": rep.answered_and_wrong_rate,
            **extra,
        }
        for key, value in values.items():
            out.setdefault(method, {}).setdefault(key, []).append(value)

    for r in range(splits):
        rng = np.random.default_rng([seed, r, 1])  # not the scene streams [seed, i]
        order = rng.permutation(n)
        cal, test = order[: n // 2], order[n // 2 :]
        record("always answer", top[test], test)
        scores: dict[str, ScoreConfig] = {
            "LAC": ScoreConfig(method="lac"),
            "APS": ScoreConfig(method="aps", randomized=True),
        }
        for name, config in scores.items():
            fitted = calibrate(probs[cal], labels[cal], alpha, config, rng=rng)
            sets = fitted.prediction_sets(probs[test], rng=rng) & real[test]
            cover = float(sets[np.arange(test.size), labels[test]].mean())
            record(name, singleton_answers(sets), test, coverage=cover, size=float(sets.sum(axis=1).mean()))
        for name, select in (("CRC", crc_threshold), ("LTT", partial(ltt_threshold, delta=delta))):
            rule = select(probs[cal].max(axis=1), correct[cal], alpha)
            record(name, np.where(rule.answer_mask(probs[test].max(axis=1)), top[test], -1), test)
        policy_seed = int(rng.integers(2**31))  # same training half for both guarantees
        policies = {
            g: fit_abstention_policy(
                probs[cal], labels[cal], alpha, guarantee=g, delta=delta, rng=policy_seed
            )
            for g in ("crc", "ltt")
        }
        for g, policy in policies.items():
            record(f"learned + {g.upper()}", policy.answers(probs[test]), test)
        learned = policies["crc"].confidence(probs[test])
        confs = {"top prob": probs[test].max(axis=1), "margin": margin[test], "learned": learned}
        for name, conf in confs.items():
            out.setdefault("auroc", {}).setdefault(name, []).append(_auroc(conf, correct[test]))
    return out


def _ms(values: list[float], digits: int = 3) -> str:
    v = np.asarray(values, dtype=np.float64)
    if np.all(np.isnan(v)):
        return "—"
    note = f" ({int(np.isnan(v).sum())} splits n/a)" if np.isnan(v).any() else ""
    return f"{np.nanmean(v):.{digits}f} ± {np.nanstd(v):.{digits}f}{note}"


def summary_table(results: dict[tuple[str, str], dict[str, dict[str, list[float]]]], data: Data) -> list[str]:
    """World x mode: accuracy, AURC, and CRC's and LTT's answered and answered-and-wrong rates (means over
    the splits), from ``results[(world, mode)]`` (``evaluate``'s output)."""
    lines = [
        "| world | mode | accuracy | AURC | CRC answered | CRC answered & wrong | LTT answered "
        "| LTT answered & wrong |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (world, mode), res in results.items():
        probs, labels = data[world][f"probs_{mode}"], data[world]["labels"]
        correct = probs.argmax(axis=1) == labels
        curve = risk_coverage_curve(probs.max(axis=1), correct)
        cells = [f"{correct.mean():.3f}", f"{curve.aurc:.4f}"]
        cells += [f"{np.mean(res[m][k]):.3f}" for m in ("CRC", "LTT") for k in ("answered", "wrong")]
        lines.append(f"| {world} | {mode} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def mode_section(
    world: str,
    mode: str,
    data: dict[str, np.ndarray],
    res: dict[str, dict[str, list[float]]],
    args: argparse.Namespace,
) -> list[str]:
    """One world's section for one mode; ``res`` is ``evaluate``'s output for it."""
    probs, labels = data[f"probs_{mode}"], data["labels"]
    correct = probs.argmax(axis=1) == labels
    curve = risk_coverage_curve(probs.max(axis=1), correct)
    at = [int(np.searchsorted(curve.coverage, c - 1e-9)) for c in COVERAGES]
    acc = {c: correct[data["categories"] == c].mean() for c in ("attribute", "relation")}
    lines = [
        f"## {world} world: {mode}",
        "",
        f"Accuracy {correct.mean():.3f} (attribute {acc['attribute']:.3f}, relation {acc['relation']:.3f}).",
        "",
        "Risk-coverage with the top-option probability as confidence, all questions (risk = error among the",
        "most confident questions answered; ties are answered together, so coverage is the next reachable):",
        "",
        "| coverage | " + " | ".join(f"{c:.1f}" for c in COVERAGES) + " |",
        "|---|" + "---|" * len(COVERAGES),
        "| risk | " + " | ".join(f"{curve.risk[i]:.3f}" for i in at) + " |",
        "",
        f"AURC {curve.aurc:.4f}, AUARC {1 - curve.aurc:.4f}.",
        "",
        f"At alpha = {args.alpha} (LTT and learned + LTT: delta = {args.delta}), test halves, "
        f"mean ± std over {args.splits} splits:",
        "",
        "| method | guarantee | answered rate | selective accuracy | answered & wrong | set coverage "
        "| set size |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, text in GUARANTEES.items():
        m = res[method]
        cells = [_ms(m["answered"]), _ms(m["sel_acc"]), _ms(m["wrong"])]
        cells += [_ms(m["coverage"]), _ms(m["size"], 2)] if "coverage" in m else ["—", "—"]
        lines.append(f"| {method} | {text} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "AUROC of each confidence for telling right from wrong top answers (test halves):",
        "",
        "| confidence | AUROC |",
        "|---|---|",
    ]
    lines += [f"| {name} | {_ms(v)} |" for name, v in res["auroc"].items()]
    return [*lines, ""]


def code_sha256() -> str:
    """The sha256 of the code that scores: this file and the zoom, VLM, imaging and synthetic-scene packages.

    A cache made by other code (a changed search, prompt or scene) is refused like one made by other
    weights; the statistics below ``collect`` may change freely, but they live in this file too, so any
    edit here asks for a rescore (safe, if slow)."""
    return sources_sha256([Path(__file__)], ("zoom", "vlm", "imaging", "synthetic"))


def load_cache(cache: Path, args: argparse.Namespace, worlds: list[str], weights: str) -> tuple[Data, float]:
    """A cache's arrays per world and its scoring time; exits naming the mismatch if it was made by
    another run (scenes, seed, worlds or weights)."""
    stored = dict(np.load(cache))
    if "worlds" not in stored or "model_sha256" not in stored or "code_sha256" not in stored:
        raise SystemExit(
            f"{cache} records no worlds, weights or code hash (an older cache): delete it to rescore"
        )
    if int(stored["n"]) != args.n or int(stored["seed"]) != args.seed:
        raise SystemExit(f"{cache} holds n={int(stored['n'])}, seed={int(stored['seed'])}")
    held = [str(w) for w in stored["worlds"]]
    if held != worlds:
        raise SystemExit(f"{cache} holds worlds {','.join(held)}, not {','.join(worlds)}")
    if str(stored["model_sha256"]) != weights:
        raise SystemExit(
            f"{cache} was made by other weights: its model.safetensors sha256 is {stored['model_sha256']}, "
            f"{args.model / 'model.safetensors'}'s is {weights}"
        )
    if str(stored["code_sha256"]) != code_sha256():
        raise SystemExit(
            f"{cache} was made by other code (benchmarks/abstention.py or foveate's zoom, vlm, "
            "imaging or synthetic packages changed since): delete it to rescore"
        )
    data = {w: {k.split("/", 1)[1]: v for k, v in stored.items() if k.startswith(f"{w}/")} for w in worlds}
    return data, float(stored["collect_s"])


def save_cache(cache: Path, data: Data, args: argparse.Namespace, weights: str, collect_s: float) -> None:
    arrays = {f"{w}/{k}": v for w, d in data.items() for k, v in d.items()}
    arrays |= {
        "n": np.array(args.n),
        "seed": np.array(args.seed),
        "worlds": np.array(list(data)),
        "model_sha256": np.array(weights),
        "code_sha256": np.array(code_sha256()),
        "collect_s": np.array(collect_s),
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, **arrays)  # type: ignore[arg-type]  # numpy stubs: allow_pickle


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--seed", type=int, default=11, help="scenes [seed, i]; split r: [seed, r, 1]")
    parser.add_argument("--splits", type=int, default=50)
    parser.add_argument("--worlds", default=DEFAULT_WORLDS, help="comma-separated worlds (plain, hard)")
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--delta", type=float, default=0.1)
    parser.add_argument("--model", type=Path, default=TINY_VLM_PATH)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/abstention.md"))
    parser.add_argument("--cache", type=Path, default=None, help=".npz of collected probabilities (reused)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    worlds = parse_worlds(args.worlds)
    names = [w.name for w in worlds]
    weights = weights_sha256(args.model) if args.cache is not None else ""
    start = time.perf_counter()
    if args.cache is not None and args.cache.exists():
        data, collect_s = load_cache(args.cache, args, names, weights)
    else:
        torch.set_num_threads(args.threads)
        vlm = TransformersVLM(args.model, device="cpu")
        data = {world.name: collect(vlm, args.n, args.seed, world) for world in worlds}
        collect_s = time.perf_counter() - start
        if args.cache is not None:
            save_cache(args.cache, data, args, weights, collect_s)
    stats_start = time.perf_counter()
    results = {
        (w, mode): evaluate(
            data[w][f"probs_{mode}"],
            data[w]["labels"],
            data[w]["options"],
            args.alpha,
            args.delta,
            args.splits,
            args.seed,
        )
        for w in names
        for mode in MODES
    }
    sections = [
        line for (w, mode), res in results.items() for line in mode_section(w, mode, data[w], res, args)
    ]
    command = f"python -m benchmarks.abstention --n {args.n} --seed {args.seed} --splits {args.splits}"
    command += f" --alpha {args.alpha} --delta {args.delta}" + worlds_option(worlds)
    scenes = args.n * len(worlds)
    lines = [
        "# Calibrated abstention on held-out synthetic scenes",
        "",
        f"Produced by `{command}` with `{model_label(args.model)}` on CPU ({platform.machine()}, "
        f"{args.threads} threads). {args.n} scenes with seed {args.seed} (zoom search was tuned on seeds "
        f"{' and '.join(map(str, TUNING_SEEDS))} and its page evaluates {', '.join(map(str, EVAL_SEEDS))}; "
        "training used 1000, 1001 and 2000) in each world: "
        f"{', '.join(names)} (the same targets and questions; the "
        "harder world adds saturated distractors and photograph or texture backgrounds). Scoring both modes "
        f"took {collect_s:.0f} s ({collect_s / scenes:.2f} s per scene and world), "
        f"the statistics {time.perf_counter() - stats_start:.1f} s.",
        "",
        *(__doc__ or "").splitlines()[2:],
        "LAC and APS (randomised, tight coverage) answer when the set is a singleton; CRC, LTT and the",
        "learned policy answer the top option when a confidence clears a threshold calibrated on the",
        "calibration half (the learned policy trains on half of it and calibrates on the other half).",
        "Each world is calibrated and tested on its own questions (the same random splits in each).",
        "",
        f"## Summary: accuracy, AURC, and CRC and LTT at alpha = {args.alpha} (LTT: delta = {args.delta})",
        "",
        "Means over the splits' test halves; each world's section below has the standard deviations and",
        "the other methods.",
        "",
        *summary_table(results, data),
        *sections,
    ]
    write_page(args.out, lines)


if __name__ == "__main__":
    main()

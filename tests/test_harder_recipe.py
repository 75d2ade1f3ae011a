"""The shipped weights' recipe (``foveate.tiny_vlm.harder``): a chain of ``train`` runs that takes 88 minutes,
so a mistyped option or a reused seed would surface only deep into a run. These check it without training."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

import pytest

from foveate.evaluation.fixture import EVAL_SEEDS, TUNING_SEED
from foveate.tiny_vlm import TINY_VLM_PATH
from foveate.tiny_vlm.harder import FINER_STEPS, STEPS, main, step_options, steps_between
from foveate.tiny_vlm.recipe import TrainConfig
from foveate.tiny_vlm.train import main as train_main
from foveate.tiny_vlm.train import parse_options


def test_every_step_parses_and_starts_from_the_step_before(tmp_path: Path) -> None:
    previous = tmp_path / "plain"
    configs: list[TrainConfig] = []
    for name, options in STEPS:
        cfg, out = parse_options(step_options(previous, name, options, tmp_path))
        assert cfg.init == str(previous) and out == tmp_path / name
        # fine-tuning only: grounding and the plain training phase would start the language model over
        assert cfg.grounding_epochs == 0 and cfg.epochs == 0
        assert cfg.focus_hard_fraction == 0.7 and cfg.shape_questions
        configs.append(cfg)
        previous = out
    assert configs[0].seeing_steps > 0 and all(c.seeing_steps == 0 for c in configs[1:])
    assert all(c.patch_size == 16 for c in configs)
    finer, _ = parse_options(step_options(previous, "S1", STEPS[0][1], tmp_path, patch_size=8, device="cuda"))
    assert finer.patch_size == 8 and finer.device == "cuda" and configs[0].device == "cpu"
    assert sum(c.binding_epochs for c in configs) > 0


def test_the_steps_draw_scenes_no_benchmark_reads() -> None:
    seeds = [parse_options(options)[0].train_seed for _, options in STEPS]
    assert len(set(seeds)) == len(seeds)
    drawn = {s for seed in seeds for s in (seed, seed + 1)}  # a run draws its seed and the next
    assert not drawn & {*EVAL_SEEDS, TUNING_SEED, 1000, 1001, 2000}


def test_every_training_option_says_what_it_does_and_keeps_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        parse_options(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps long lines
    for option in fields(TrainConfig):
        help_text = option.metadata.get("help", "")
        assert help_text, f"TrainConfig.{option.name} has no --help line"
        assert f"--{option.name.replace('_', '-')}" in text
        assert " ".join(help_text.split()) in text
    assert parse_options([])[0] == TrainConfig()
    cfg, _ = parse_options(["--node-existence", "true", "--focus-lr", "5e-4"])
    assert cfg.node_existence is True and cfg.focus_lr == 5e-4


#: The command lines fixture-notes.md gives for each 8 px candidate (sessions 14-16; P8c's 10 px rule was a
#: one-off wrapper then, ``--hard-answer-pixels 10`` now), less ``--init`` and ``--out``.
_NOTES = " --patch-size 8 --grounding-epochs 0 --epochs 0 --focus-hard-fraction 0.7 --shape-weight 1 "
_NOTES += "--binding-weight 1 --shape-questions true --existence-repeats 3 --eval-scenes 100 "
TRAINED_WITH = {
    "P8a": "--seeing-steps 600 --focus-scenes 600 --focus-epochs 1 --train-seed 9300" + _NOTES,
    "P8b": "--focus-scenes 600 --binding-epochs 2 --focus-epochs 1 --probe-options true --train-seed 9400"
    + _NOTES,
    "P8c": "--focus-scenes 400 --focus-epochs 1 --probe-options true --hard-answer-pixels 10 "
    "--train-seed 9500" + _NOTES,
    "P8d": "--focus-scenes 400 --focus-epochs 1 --probe-options true --hard-answer-pixels 10 "
    "--node-confusers 3 --train-seed 9600" + _NOTES,
}


def test_the_finer_route_reads_as_its_candidates_were_trained(tmp_path: Path) -> None:
    """Every option of P8a-P8d as the notes give it (later options override FOCUSING's, as argparse reads)."""
    assert [name for name, _ in FINER_STEPS] == list(TRAINED_WITH)
    for name, options in FINER_STEPS:
        got, _ = parse_options(step_options(tmp_path, name, options, tmp_path, patch_size=8))
        want, _ = parse_options(TRAINED_WITH[name].split())
        assert replace(got, init="") == replace(want, init=""), name
    seeds = [parse_options(o)[0].train_seed for _, o in [*FINER_STEPS, *STEPS]]
    drawn = [s for seed in seeds for s in (seed, seed + 1)]
    assert len(set(drawn)) == len(drawn) and not set(drawn) & {*EVAL_SEEDS, TUNING_SEED, 1000, 1001, 2000}


def test_a_chain_runs_in_parts() -> None:
    assert [n for n, _ in steps_between(FINER_STEPS, "P8b", "P8c")] == ["P8b", "P8c"]
    assert [n for n, _ in steps_between(STEPS, None, "S2")] == ["S1", "S2"]
    assert steps_between(STEPS, None, None) == STEPS
    with pytest.raises(ValueError, match="--from-step P8a: this chain's steps are S1, S2"):
        steps_between(STEPS, "P8a", None)
    with pytest.raises(ValueError, match="--last-step P8a comes before --from-step P8c"):
        steps_between(FINER_STEPS, "P8c", "P8a")


def test_the_finer_route_never_overwrites_the_shipped_weights_by_default(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = str(tmp_path / "missing")  # were a guard gone, the run would fail on it, not start training
    coarse, fine = tmp_path / "coarse", tmp_path / "fine"  # configs only: no weights to train from
    for folder, patch in ((coarse, 16), (fine, 8)):
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"vision_config": {"patch_size": patch}}))
    with pytest.raises(SystemExit):
        main(["--finer", "--init", missing])
    assert "--finer makes candidate weights: name their folder with --out" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--finer", "--from-step", "P8c", "--out", str(tmp_path / "out")])
    assert "--from-step P8c needs --init" in capsys.readouterr().err
    refused = {
        "a chain run in parts makes a step's weights": ["--init", missing, "--last-step", "S2"],
        "is the shipped weights' folder": ["--finer", "--init", missing, "--out", str(TINY_VLM_PATH)],
        "--patch-size 16 contradicts it": [
            "--finer", "--init", missing, "--patch-size", "16", "--out", missing,
        ],
        "has 16 px patches; this run needs the 8 px weights of the step before it": [
            "--finer", "--from-step", "P8a", "--init", str(coarse), "--out", missing,
        ],
        "has 8 px patches; this run needs 16 px weights to move": [
            "--finer", "--init", str(fine), "--out", missing,
        ],
        "not a tiny VLM folder": ["--finer", "--init", missing, "--out", missing],
    }  # fmt: skip
    for message, argv in refused.items():
        with pytest.raises(SystemExit):
            main(argv)
        assert message in capsys.readouterr().err, argv


def test_training_from_a_folder_without_a_model_stops_before_drawing_scenes(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no config.json there, so no saved model to start from"):
        train_main(["--init", str(tmp_path), "--out", str(tmp_path / "out")])

"""The shipped weights' recipe (``foveate.tiny_vlm.harder``): a chain of ``train`` runs that takes 88 minutes,
so a mistyped option or a reused seed would surface only deep into a run. These check it without training."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from foveate.evaluation.fixture import EVAL_SEEDS, TUNING_SEED
from foveate.tiny_vlm.harder import FINER_STEPS, STEPS, main, step_options, steps_between
from foveate.tiny_vlm.recipe import TrainConfig
from foveate.tiny_vlm.train import parse_options
from foveate.tiny_vlm.views import VISIBLE_PIXELS


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


def test_the_finer_route_reads_as_its_candidates_were_trained(tmp_path: Path) -> None:
    """P8a-P8d's options as fixture-notes.md (sessions 14-16) gives them; later ones override FOCUSING's."""
    configs = {
        name: parse_options(step_options(tmp_path, name, options, tmp_path, patch_size=8))[0]
        for name, options in FINER_STEPS
    }
    assert list(configs) == ["P8a", "P8b", "P8c", "P8d"]
    assert all(c.patch_size == 8 and c.grounding_epochs == 0 and c.epochs == 0 for c in configs.values())
    assert configs["P8a"].seeing_steps == 600 and configs["P8a"].focus_scenes == 600
    assert configs["P8b"].binding_epochs == 2 and configs["P8b"].probe_options
    assert [configs[n].focus_scenes for n in ("P8c", "P8d")] == [400, 400]
    assert [configs[n].hard_answer_pixels for n in ("P8b", "P8c", "P8d")] == [VISIBLE_PIXELS, 10, 10]
    assert [c.node_confusers for c in configs.values()] == [0, 0, 0, 3]
    assert [c.train_seed for c in configs.values()] == [9300, 9400, 9500, 9600]
    seeds = [c.train_seed for c in configs.values()] + [parse_options(o)[0].train_seed for _, o in STEPS]
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
    missing = str(tmp_path / "missing")  # were the guard gone, regrid would fail here, not start training
    with pytest.raises(SystemExit):
        main(["--finer", "--init", missing])
    assert "--finer makes candidate weights: name their folder with --out" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--finer", "--from-step", "P8c", "--out", str(tmp_path / "out")])
    assert "--from-step P8c needs --init" in capsys.readouterr().err

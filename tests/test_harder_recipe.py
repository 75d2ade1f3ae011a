"""The shipped weights' recipe (``foveate.tiny_vlm.harder``): a chain of ``train`` runs that takes 88 minutes,
so a mistyped option or a reused seed would surface only deep into a run. These check it without training."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from foveate.evaluation.fixture import EVAL_SEEDS, TUNING_SEED
from foveate.tiny_vlm.harder import STEPS, step_options
from foveate.tiny_vlm.recipe import TrainConfig
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

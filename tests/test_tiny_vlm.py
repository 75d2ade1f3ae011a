"""The shipped tiny VLM loads through the public loader and sees what it must see.

A broken checkpoint, tokenizer, processor or loader fails here. On 100 held-out scenes of the plain
world the model must answer attribute and relation questions from the crop around the targets at least
90% of the time, and do much worse on the whole image (the gap zoom search exists to close); its
existence probe must separate a present target from an absent object on crops.

The harder world (``foveate.synthetic.HARD``) is measured in docs/benchmarks/fixture.md, not held to a
bar here: the shipped weights were trained in the plain world only (docs/benchmarks/fixture-notes.md).
"""

from __future__ import annotations

from foveate.evaluation.fixture import evaluate_fixture
from foveate.tiny_vlm import TINY_VLM_PATH, tiny_vlm_available
from foveate.vlm import TransformersVLM


def test_shipped_weights_see_small_targets_only_when_zoomed() -> None:
    assert tiny_vlm_available(), f"the trained tiny VLM is missing from {TINY_VLM_PATH}"
    vlm = TransformersVLM(TINY_VLM_PATH)
    assert (
        vlm.model_type == "llava"
        and vlm.profile.family == "foveate-tiny"
        and vlm.profile.token_rule is not None
    )
    assert vlm.profile.token_rule.tokens_for(2048, 1536) == 64  # 128 px input, 16 px patches
    report = evaluate_fixture(vlm, n=100, seed=11)
    crop, whole, n = report.by_category["attribute"]
    assert n == 50
    assert crop >= 0.90, report
    assert whole <= crop - 0.3, report
    relation_crop, _, _ = report.by_category["relation"]
    assert relation_crop >= 0.90, report
    assert report.existence_auroc >= 0.95, report

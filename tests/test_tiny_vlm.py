"""The shipped tiny VLM loads through the public loader and sees what it must see.

A broken checkpoint, tokenizer, processor or loader fails here: on 100 held-out scenes the model
must answer from the crop around the targets at least 90% of the time, and do much worse on
the whole image (the gap zoom search exists to close).
"""

from __future__ import annotations

from foveate.fixtures import TINY_VLM_PATH, tiny_vlm_available
from foveate.fixtures.bench import evaluate_fixture
from foveate.vlm import TransformersVLM


def test_shipped_weights_meet_the_crop_bar() -> None:
    assert tiny_vlm_available(), f"the trained tiny VLM is missing from {TINY_VLM_PATH}"
    vlm = TransformersVLM(TINY_VLM_PATH)
    assert vlm.family == "llava" and vlm.token_spec is not None
    report = evaluate_fixture(vlm, n=100, seed=11)
    assert report.crop_accuracy >= 0.90, report
    assert report.whole_accuracy <= report.crop_accuracy - 0.25, report
    assert report.existence_auroc >= 0.9, report

"""Every backend keeps the VLM contract (``foveate.testing.contract``): the same checks, run on each.

Local: the tiny random model of each family, the embedded tiny VLM, the coalescing wrapper, and the
scripted stand-in users write tests with. A live OpenAI-compatible server runs them in
``tests/test_openai_vlm.py`` (``transformers serve``, which returns no log-probabilities) and in
``serving/test_contract.py`` (vLLM, every check).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from foveate.testing.contract import Check, ContractInputs, ContractViolation, contract_checks
from foveate.testing.scripted import ScriptedVLM
from foveate.vlm import CoalescingVLM, TransformersVLM, VLMProfile
from foveate.vlm.base import VLM
from foveate.vlm.families import llava

CHECKS = contract_checks()


def _counting(vlm: TransformersVLM) -> tuple[TransformersVLM, ContractInputs]:
    """The model with a hook counting its language model's forward passes (every path runs it)."""
    calls = [0]

    def count(*_: Any) -> None:
        calls[0] += 1

    vlm.model.get_decoder().register_forward_pre_hook(count)
    return vlm, ContractInputs(forward_passes=lambda: calls[0])


@pytest.fixture(scope="module")
def backends(
    tiny_model_dirs: dict[str, Path], vlm: TransformersVLM
) -> Iterator[dict[str, tuple[VLM, ContractInputs]]]:
    local = {arch: _counting(TransformersVLM(path, device="cpu")) for arch, path in tiny_model_dirs.items()}
    coalescing = CoalescingVLM(TransformersVLM(tiny_model_dirs["llava"], device="cpu"))
    scripted = ScriptedVLM(
        yes=lambda view, prompt: 0.9 if "red" in prompt else 0.2,
        score=lambda images, prompt, options: [2.0 if o == "red" else 1.0 for o in options],
        generate=lambda images, prompt: "red",
        relevance=lambda view, prompt: __import__("numpy").ones((4, 4)),
        profile=VLMProfile.unknown(family="scripted", token_rule=llava.LLAVA_1_5),
    )
    yield {
        **{f"transformers-{arch}": pair for arch, pair in local.items()},
        "transformers-embedded-tiny-vlm": (vlm, ContractInputs()),
        "coalescing": (coalescing, ContractInputs()),
        "scripted": (scripted, ContractInputs()),
    }
    coalescing.close()


BACKENDS = [
    "transformers-llava",
    "transformers-qwen2_vl",
    "transformers-idefics3",
    "transformers-embedded-tiny-vlm",
    "coalescing",
    "scripted",
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_keeps_the_contract(
    backend: str, check: Check, backends: dict[str, tuple[VLM, ContractInputs]]
) -> None:
    vlm, inputs = backends[backend]
    check.run(vlm, inputs)


def test_the_suite_catches_a_backend_that_breaks_it() -> None:
    """Each check can fail: a scripted model made wrong in one way is caught by the check for it."""
    by_name = {c.name: c for c in CHECKS}
    honest = ScriptedVLM(yes=lambda view, prompt: 0.7)

    class Overcharging(ScriptedVLM):  # reports more than it charged
        def generate(self, request, ledger=None):  # type: ignore[no-untyped-def]
            result = super().generate(request, ledger)
            return result.model_copy(update={"usage": result.usage + result.usage})

    class Careless(ScriptedVLM):  # runs the script, then checks the budget
        def yes_probabilities(self, requests, ledger=None):  # type: ignore[no-untyped-def]
            answers = super().yes_probabilities(requests, None)
            return super().yes_probabilities(requests, ledger) if ledger is not None else answers

    class Inconsistent(ScriptedVLM):  # a batch that disagrees with single probes
        def yes_probabilities(self, requests, ledger=None):  # type: ignore[no-untyped-def]
            answers = super().yes_probabilities(requests, ledger)
            if len(requests) > 1:
                answers[0] = answers[0].model_copy(update={"p_yes": 1 - answers[0].p_yes})
            return answers

    class Undeclared(ScriptedVLM):  # maps the profile does not declare
        def relevance_maps(self, views, questions, ledger=None, *, normalize=True):  # type: ignore[no-untyped-def]
            return ScriptedVLM(relevance=lambda v, q: __import__("numpy").ones((2, 2))).relevance_maps(
                views, questions
            )

    by_name["usage_is_charged"].run(honest, ContractInputs())
    for broken, check in (
        (Overcharging(), "usage_is_charged"),
        (Careless(yes=lambda v, p: 0.7), "refused_before_any_work"),
        (Inconsistent(yes=lambda v, p: 0.7), "batch_equals_single"),
        (Undeclared(), "relevance_as_declared"),
    ):
        inputs = ContractInputs(forward_passes=lambda b=broken: b.calls["yes"])  # type: ignore[misc]
        with pytest.raises(ContractViolation):
            by_name[check].run(broken, inputs)


@pytest.mark.parametrize("arch", ["llava", "qwen2_vl", "idefics3"])
def test_the_forward_pass_counter_sees_real_work(
    arch: str, backends: dict[str, tuple[VLM, ContractInputs]]
) -> None:
    """So that ``refused_before_any_work`` counting zero passes means something."""
    from foveate.vlm import VLMRequest

    vlm, inputs = backends[f"transformers-{arch}"]
    assert inputs.forward_passes is not None
    before = inputs.forward_passes()
    vlm.yes_probability(VLMRequest.from_prompt(inputs.probe, [inputs.image]))
    assert inputs.forward_passes() > before

"""OpenAIVLM against vLLM keeps the whole VLM contract (``foveate.testing.contract``), log-probabilities
included: the checks every local backend passes in ``tests/test_contract.py``.

Batch composition changes bf16 rounding on the server, so two answers to the same probe may differ by up to
``TOLERANCE`` (serving/test_vllm.py: a factor of two over what was seen between the server and the local
model).
"""

from __future__ import annotations

import pytest

from foveate.testing.contract import Check, ContractInputs, contract_checks
from foveate.vlm import OpenAIVLM

TOLERANCE = 0.06


@pytest.mark.parametrize("check", contract_checks(), ids=lambda c: c.name)
def test_vllm_keeps_the_contract(remote: OpenAIVLM, check: Check) -> None:
    check.run(remote, ContractInputs(tolerance=TOLERANCE))

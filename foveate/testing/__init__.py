"""Test support, shipped for users who write nodes, strategies and backends (as pydantic-ai ships TestModel).

- ``ScriptedVLM`` (``scripted``): a VLM whose answers are functions you write, under the real contract
  (requests in, results with usage out, the ledger held before every call).
- The VLM contract suite (``contract``): the checks every backend passes; run them on yours.
- ``tiny_models``: tiny random-weight models of every supported family (LLaVA, Qwen2-VL, Qwen2.5-VL,
  Idefics3), built from a config, offline, in milliseconds.

Production code never imports this package (an import-linter contract in pyproject.toml).
"""

from foveate.testing.contract import Check, ContractInputs, ContractViolation, contract_checks
from foveate.testing.scripted import ScriptedVLM

__all__ = ["Check", "ContractInputs", "ContractViolation", "ScriptedVLM", "contract_checks"]

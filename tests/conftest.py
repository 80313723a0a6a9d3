"""Shared fixtures. Tests run offline (no hub access, ever)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cache the tests build the tiny world into: fresh per session, unless
    ``HARNESS_TEST_CACHE`` names one to reuse between sessions."""
    reuse = os.environ.get("HARNESS_TEST_CACHE")
    root = Path(reuse) if reuse else tmp_path_factory.mktemp("harness-cache")
    os.environ["HARNESS_CACHE"] = str(root)
    return root


@pytest.fixture(scope="session")
def tiny_world(cache_root: Path) -> Path:
    """The default tiny world, built once per session (about two minutes on one core)."""
    from harness.world.build import ensure_world
    from harness.world.config import WorldConfig

    return ensure_world(WorldConfig(), cache_root, log=lambda line: None)

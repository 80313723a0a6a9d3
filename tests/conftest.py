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
    """The default tiny world, installed once per session from the copy the package ships."""
    from harness.builder.build import ensure_world
    from harness.world.config import WorldConfig

    return ensure_world(WorldConfig(), cache_root, log=lambda line: None)


def load_run(suite, variant: str, seed: int = 0):  # type: ignore[no-untyped-def]
    """``(ctx, setup)`` of one run, as ``harness.run.execute`` builds them: the training context and
    the evaluation's setup (judges loaded), on CPU, with a fresh cost counter."""
    import torch

    from harness.run.execute import eval_setup, train_context
    from harness.suite.resolve import resolve
    from methods.base import Costs

    resolved = resolve(suite)
    device = torch.device("cpu")
    ctx, data = train_context(resolved, variant, seed, device, Costs(), lambda p: None)
    setup = eval_setup(resolved, ctx.reference, ctx.tokenizer, device, ctx.reward.uncharged(), data)
    return ctx, setup


@pytest.fixture
def make_ctx(tiny_world: Path):  # type: ignore[no-untyped-def]
    """A factory of TrainContexts on the tiny world, as ``harness run`` builds them:
    ``make_ctx("rrhf", seed=0, overrides=["budget.rounds=2"]) -> (ctx, params)``; from
    ``suites/zoo.yaml``, the default suite with every registered method."""
    import torch

    from harness.run.execute import train_context
    from harness.suite.loader import load_suite
    from harness.suite.resolve import resolve
    from methods.base import Costs

    def make(variant: str, seed: int = 0, overrides: list[str] | None = None):  # type: ignore[no-untyped-def]
        suite = load_suite(REPO / "suites" / "zoo.yaml", [f"seeds=[{seed}]", *(overrides or [])])
        device = torch.device("cpu")
        ctx, _ = train_context(resolve(suite), variant, seed, device, Costs(), lambda p: None)
        return ctx, suite.variant(variant).params

    return make

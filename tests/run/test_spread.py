"""A run spread over two workers (a variant's ``resources: {workers_per_run: 2}``: Ray Train,
gloo, the policy sharded with FSDP2) is the run of one worker: ``harness run suites/spread.yaml``
trains DPO, GRPO and PPO, each beside the same variant spread over two workers, in one suite; each
spread run takes the same per-step losses, spends the same budget and gets the same leaderboard
row as its one-worker twin.

The suite is small (2 rounds of one optimizer step each), so ``rounds[r]["loss"]`` is the loss of
step r. It runs as a user runs it, in a process of its own (Ray Train started in this process
would leave it unable to start later pools' actors).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.suite.runs import RunResult
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.spread]  # `pytest -m spread` runs them

SPREAD = REPO / "suites" / "spread.yaml"
METHODS = ["dpo", "grpo", "ppo"]
# The same numbers computed in another order: a worker's share of a mini-batch is padded to its
# own width, its gradient summed apart, the shards updated apart. Measured on this suite: the
# largest relative difference of a step's loss was 4e-7 (PPO; GRPO's losses are ~1e-8 and 1e-5,
# compared on their absolute difference) and of a step's gradient norm 1e-6; a real error (a mean
# over one worker's rows, a gradient not averaged) moves them by 1e-2 and more.
REL = 1e-4
BUDGET = ("prompts", "samples", "generated_tokens", "forward_tokens", "trained_tokens")
BUDGET += ("reward_tokens", "reward_calls", "optimizer_steps")


@pytest.fixture(scope="module")
def results(tiny_world: Path, tmp_path_factory: Any) -> Path:
    """The spread suite's results folder, after ``harness run`` (exit 0)."""
    out = tmp_path_factory.mktemp("spread")
    cmd = [sys.executable, "-m", "harness.cli", "run", str(SPREAD), "--out", str(out), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return out / "spread"


def _runs(results: Path) -> dict[str, RunResult]:
    found = [RunResult.from_json(p.read_text()) for p in (results / "runs").glob("*.json")]
    return {r.variant: r for r in found}


@pytest.mark.parametrize("method", METHODS)
def test_two_workers_take_the_steps_of_one(results: Path, method: str) -> None:
    runs = _runs(results)
    one, two = runs[method], runs[f"{method}-2w"]
    assert one.status == "done", f"{one.error}\n{one.traceback}"
    assert two.status == "done", f"{two.error}\n{two.traceback}"
    assert [r["steps"] for r in two.rounds] == [r["steps"] for r in one.rounds] == [1, 1]
    for alone, spread in zip(one.rounds, two.rounds, strict=True):
        assert spread["loss"] == pytest.approx(alone["loss"], rel=REL, abs=1e-6)
        # GRPO's loss is ~0 at these steps (advantages of mean 0, ratios 1): its gradient is not
        assert spread["grad_norm"] == pytest.approx(alone["grad_norm"], rel=REL)
        if "mean_reward" in alone:  # sampled rounds (DPO's offline pairs have no reward)
            assert spread["mean_reward"] == pytest.approx(alone["mean_reward"], rel=REL)
    for key in BUDGET:  # the equal-budget contract: the spend is the run's, not a worker's
        assert two.costs[key] == one.costs[key], key
    assert two.provenance["workers"] == 2 and one.provenance["workers"] == 1
    # evaluated on the first worker, its policy gathered whole: the one-worker run's evaluation
    spread_metrics = {m.metric: m.value for m in two.metrics}
    alone_metrics = {m.metric: m.value for m in one.metrics}
    assert spread_metrics == pytest.approx(alone_metrics, rel=1e-3, abs=1e-3)


def test_each_spread_run_s_row_is_beside_its_one_worker_twin(results: Path) -> None:
    """One leaderboard holds both runs of each method, with the same win-rates and intervals."""
    board = (results / "leaderboard.md").read_text()
    for method in METHODS:
        assert f"| {method} " in board and f"| {method}-2w " in board, board
    table = pd.read_parquet(results / "table.parquet")
    gold = table[table.metric == "winrate.gold"].set_index("variant")
    assert sorted(gold.index) == sorted([*METHODS, *(f"{m}-2w" for m in METHODS)])
    for method in METHODS:
        one, two = gold.loc[method], gold.loc[f"{method}-2w"]
        for column in ("value", "ci_low", "ci_high"):
            assert two[column] == pytest.approx(one[column], abs=1e-3), (method, column)

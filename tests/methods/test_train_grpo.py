"""GRPO's train loop on the tiny world: every parameter moves, the proxy reward rises, a NaN stops
the run naming round and step, and the costs are counted (with the budget's or its own G)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from methods import grpo
from methods.base import DivergenceError, Progress
from tests.methods.helpers import (
    nan_rewards_after_first_call,
    snapshot,
    train_and_measure,
    unchanged,
)

SMALL = ["budget.rounds=1", "budget.prompts_per_round=8"]


def test_every_parameter_moves(make_ctx: Any) -> None:
    ctx, params = make_ctx("grpo", overrides=[*SMALL, "methods.grpo.params.lr=1e-2"])
    before = snapshot(ctx.policy)
    grpo.train(ctx, params)
    assert unchanged(ctx.policy, before) == []
    assert not ctx.policy.training


@pytest.mark.slow
def test_raises_the_proxy_reward(make_ctx: Any) -> None:
    # seeds 0, 1, 2 with the default budget (4 rounds x 32 prompts x 4) at lr 2e-4: base -0.505,
    # trained +0.113 / +0.090 / +0.224, i.e. +0.60 to +0.73 (about 5 s of training each on one
    # core); margin: half the smallest.
    ctx, params = make_ctx("grpo", overrides=["methods.grpo.params.lr=2e-4"])
    base, trained = train_and_measure(ctx, grpo.train, params, "grpo")
    assert trained - base > 0.3


def test_nan_reward_raises_divergence_naming_round_and_step(make_ctx: Any) -> None:
    ctx, params = make_ctx("grpo", overrides=["budget.rounds=2", "budget.prompts_per_round=8"])
    ctx.reward = nan_rewards_after_first_call(ctx.reward)
    # round 0: 8 prompts x 4 samples = 32 = two mini-batches of 16, one iteration: steps 0, 1
    with pytest.raises(DivergenceError, match=r"^grpo diverged at round 1, step 2:") as err:
        grpo.train(ctx, params)
    assert (err.value.method, err.value.round, err.value.step) == ("grpo", 1, 2)


def test_costs_and_progress(make_ctx: Any) -> None:
    ctx, params = make_ctx("grpo", overrides=["budget.rounds=2", "budget.prompts_per_round=4"])
    seen: list[Progress] = []
    ctx.progress = seen.append
    grpo.train(ctx, params)
    b, costs = ctx.budget, ctx.costs
    assert costs.prompts == b.rounds * b.prompts_per_round
    assert costs.samples == b.rounds * b.prompts_per_round * b.samples_per_prompt == 32
    assert costs.reward_calls == costs.samples
    assert 0 < costs.generated_tokens <= costs.samples * b.max_new_tokens
    steps_per_round = params.iterations * math.ceil(16 / params.mini_batch_size)
    assert costs.optimizer_steps == b.rounds * steps_per_round
    assert [p.step for p in seen] == list(range(costs.optimizer_steps))
    assert all(math.isfinite(p.loss) and p.mean_reward is not None for p in seen)


def test_own_group_size_samples_that_many(make_ctx: Any) -> None:
    overrides = [*SMALL, "methods.grpo.params.group_size=3", "methods.grpo.params.iterations=2"]
    ctx, params = make_ctx("grpo", overrides=overrides)
    grpo.train(ctx, params)
    assert ctx.costs.samples == ctx.costs.reward_calls == 8 * 3  # not the budget's 4
    assert ctx.costs.optimizer_steps == 2 * math.ceil(24 / params.mini_batch_size)

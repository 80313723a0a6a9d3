"""PPO's train loop on the tiny world: every parameter moves (the value head's too), the proxy
reward rises, a NaN stops the run naming round and step, and the costs are counted."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from methods import common, ppo, sampling
from methods.base import DivergenceError, Progress
from tests.methods.helpers import (
    nan_rewards_after_first_call,
    snapshot,
    train_and_measure,
    unchanged,
)

SMALL = ["budget.rounds=1", "budget.prompts_per_round=8"]


def test_logps_and_values_match_token_logps(make_ctx: Any) -> None:
    ctx, _ = make_ctx("ppo", overrides=SMALL)
    samples = sampling.pack(ctx.tokenizer, ctx.prompts[:3], [" Sure.", " First, boil", ""], "cpu")
    head = ppo.ValueHead(ctx.policy.config.hidden_size)
    with torch.no_grad():
        logps, values = ppo.logps_and_values(ctx.policy, head, samples, temperature=0.7)
        expected = common.token_logps(ctx.policy, samples, temperature=0.7)
    torch.testing.assert_close(logps, expected)
    assert values.shape == logps.shape  # [N, T], zero-initialised head: all 0
    assert torch.equal(values, torch.zeros_like(values))


def test_every_parameter_moves(make_ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, params = make_ctx("ppo", overrides=[*SMALL, "methods.ppo.params.lr=1e-2"])
    heads: list[ppo.ValueHead] = []

    class RecordedHead(ppo.ValueHead):
        def __init__(self, hidden_size: int) -> None:
            super().__init__(hidden_size)
            heads.append(self)

    monkeypatch.setattr(ppo, "ValueHead", RecordedHead)
    before = snapshot(ctx.policy)
    ppo.train(ctx, params)
    assert unchanged(ctx.policy, before) == []
    (head,) = heads  # zero-initialised, so any nonzero weight moved
    assert all(bool(p.abs().sum() > 0) for p in head.parameters())
    assert not ctx.policy.training


@pytest.mark.slow
def test_raises_the_proxy_reward(make_ctx: Any) -> None:
    # seeds 0, 1, 2 with 2 rounds at lr 3e-4: base -0.505, trained +0.209 / +0.498 / +0.283,
    # i.e. +0.71 to +1.00 (about 5 s of training each on one core); margin: half the smallest.
    ctx, params = make_ctx("ppo", overrides=["budget.rounds=2", "methods.ppo.params.lr=3e-4"])
    base, trained = train_and_measure(ctx, ppo.train, params, "ppo")
    assert trained - base > 0.35


def test_nan_reward_raises_divergence_naming_round_and_step(make_ctx: Any) -> None:
    overrides = ["budget.rounds=2", "budget.prompts_per_round=4", "methods.ppo.params.ppo_epochs=1"]
    ctx, params = make_ctx("ppo", overrides=overrides)
    ctx.reward = nan_rewards_after_first_call(ctx.reward)
    # round 0: 4 prompts x 4 samples = 16 rollouts = one mini-batch of 16, one epoch: step 0
    with pytest.raises(DivergenceError, match=r"^ppo diverged at round 1, step 1:") as err:
        ppo.train(ctx, params)
    assert (err.value.method, err.value.round, err.value.step) == ("ppo", 1, 1)


def test_costs_and_progress(make_ctx: Any) -> None:
    ctx, params = make_ctx("ppo", overrides=["budget.rounds=2", "budget.prompts_per_round=4"])
    seen: list[Progress] = []
    ctx.progress = seen.append
    ppo.train(ctx, params)
    b, costs = ctx.budget, ctx.costs
    assert costs.prompts == b.rounds * b.prompts_per_round
    assert costs.samples == b.rounds * b.prompts_per_round * b.samples_per_prompt == 32
    assert costs.reward_calls == costs.samples
    assert 0 < costs.generated_tokens <= costs.samples * b.max_new_tokens
    steps_per_round = params.ppo_epochs * math.ceil(16 / params.mini_batch_size)
    assert costs.optimizer_steps == b.rounds * steps_per_round
    assert [p.step for p in seen] == list(range(costs.optimizer_steps))
    assert [p.round for p in seen] == [r for r in range(b.rounds) for _ in range(steps_per_round)]
    assert all(math.isfinite(p.loss) and p.mean_reward is not None for p in seen)
    # every step reports its loss's statistics (kept per round in the run's result)
    keys = {"loss", "grad_norm", "policy_loss", "value_loss", "clipfrac", "approx_kl", "kl"}
    assert all(keys <= set(p.stats) and p.stats["loss"] == p.loss for p in seen)
    assert all(0 <= p.stats["clipfrac"] <= 1 and p.stats["grad_norm"] >= 0 for p in seen)
    assert seen[0].stats["clipfrac"] == 0.0  # the first step is on-policy: nothing clipped

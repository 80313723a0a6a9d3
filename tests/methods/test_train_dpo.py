"""DPO's train loop on the tiny world, offline (dataset pairs) and online (best vs worst of K):
every parameter moves, the proxy reward rises, a NaN stops the run naming round and step, the
costs are counted, reference log-probs come once and both sides of a pair in one forward pass."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from methods import dpo
from methods.base import DivergenceError, Progress
from tests.methods.helpers import snapshot, train_and_measure, unchanged

SMALL = ["budget.rounds=1", "budget.prompts_per_round=8"]
ONLINE = "methods.dpo.params.pairs=online"


@pytest.mark.parametrize("pairs", ["offline", "online"])
def test_every_parameter_moves(make_ctx: Any, pairs: str) -> None:
    overrides = [*SMALL, f"methods.dpo.params.pairs={pairs}", "methods.dpo.params.lr=1e-2"]
    ctx, params = make_ctx("dpo", overrides=overrides)
    before = snapshot(ctx.policy)
    dpo.train(ctx, params)
    assert ctx.costs.optimizer_steps > 0
    assert unchanged(ctx.policy, before) == []
    assert not ctx.policy.training


# Default budget (4 rounds x 32 prompts), seeds 0, 1, 2, base -0.505 (about 1 s of offline and
# 3.5 s of online training each on one core); margins: half the smallest observed gain.
#   offline, lr 5e-4: trained -0.033 / +0.343 / +0.052, i.e. +0.47 to +0.85
#   online,  lr 3e-4: trained +0.221 / +0.177 / +0.322, i.e. +0.68 to +0.83
@pytest.mark.slow
@pytest.mark.parametrize(
    ("pairs", "lr", "margin"), [("offline", 5e-4, 0.24), ("online", 3e-4, 0.34)]
)
def test_raises_the_proxy_reward(make_ctx: Any, pairs: str, lr: float, margin: float) -> None:
    overrides = [f"methods.dpo.params.pairs={pairs}", f"methods.dpo.params.lr={lr}"]
    ctx, params = make_ctx("dpo", overrides=overrides)
    base, trained = train_and_measure(ctx, dpo.train, params, f"dpo {pairs}")
    assert trained - base > margin


def test_nan_weights_raise_divergence_naming_round_and_step(make_ctx: Any) -> None:
    ctx, params = make_ctx("dpo", overrides=["budget.rounds=2", "budget.prompts_per_round=8"])

    def blow_up_after_step_0(progress: Progress) -> None:  # as a too-large update would
        if progress.step == 0:
            with torch.no_grad():
                next(ctx.policy.parameters()).fill_(math.nan)

    ctx.progress = blow_up_after_step_0
    # 8 pairs a round in batches of 8: round 0 is step 0, round 1 starts at step 1
    with pytest.raises(DivergenceError, match=r"^dpo diverged at round 1, step 1:") as err:
        dpo.train(ctx, params)
    assert (err.value.method, err.value.round, err.value.step) == ("dpo", 1, 1)


def test_offline_costs_reference_once_and_one_forward_per_step(make_ctx: Any) -> None:
    ctx, params = make_ctx("dpo", overrides=["budget.rounds=2", "budget.prompts_per_round=12"])
    calls = {"reference": 0, "policy": 0}
    ctx.reference.register_forward_hook(
        lambda *_: calls.__setitem__("reference", calls["reference"] + 1)
    )
    ctx.policy.register_forward_hook(lambda *_: calls.__setitem__("policy", calls["policy"] + 1))
    seen: list[tuple[Progress, dict[str, int]]] = []
    ctx.progress = lambda p: seen.append((p, dict(calls)))
    dpo.train(ctx, params)
    b, costs = ctx.budget, ctx.costs
    assert (costs.prompts, costs.samples, costs.generated_tokens, costs.reward_calls) == (
        24,
        0,
        0,
        0,
    )
    steps_per_round = params.epochs * math.ceil(12 / params.batch_size)  # 8 + 4 pairs
    assert costs.optimizer_steps == b.rounds * steps_per_round == len(seen)
    # 48 rows (24 chosen, 24 rejected) through the reference in chunks of 16, before step 0
    assert [c["reference"] for _, c in seen] == [3] * len(seen)
    assert [c["policy"] for _, c in seen] == list(range(1, len(seen) + 1))
    assert [p.step for p, _ in seen] == list(range(len(seen)))
    assert all(p.mean_reward is None for p, _ in seen)


def test_online_costs(make_ctx: Any) -> None:
    ctx, params = make_ctx(
        "dpo", overrides=["budget.rounds=2", "budget.prompts_per_round=4", ONLINE]
    )
    seen: list[Progress] = []
    ctx.progress = seen.append
    dpo.train(ctx, params)
    b, costs = ctx.budget, ctx.costs
    assert costs.prompts == b.rounds * b.prompts_per_round
    assert (
        costs.samples == costs.reward_calls == b.rounds * b.prompts_per_round * b.samples_per_prompt
    )
    assert costs.generated_tokens > 0
    assert 0 < costs.optimizer_steps == len(seen) <= b.rounds  # at most 4 pairs a round: 1 batch
    assert all(p.mean_reward is not None for p in seen)
    for p in seen:  # the implicit rewards, as the loss saw them
        margin = p.stats["chosen_reward"] - p.stats["rejected_reward"]
        assert p.stats["reward_margin"] == pytest.approx(margin, abs=1e-6)
        assert 0 <= p.stats["reward_accuracy"] <= 1


def test_online_skips_prompts_whose_rewards_all_tie(make_ctx: Any) -> None:
    ctx, params = make_ctx("dpo", overrides=[*SMALL, ONLINE])
    ctx.reward = lambda prompts, responses: torch.zeros(len(responses))
    before = snapshot(ctx.policy)
    dpo.train(ctx, params)
    assert ctx.costs.samples == 8 * ctx.budget.samples_per_prompt
    assert ctx.costs.optimizer_steps == 0
    assert unchanged(ctx.policy, before) == list(before)


def test_offline_without_preferences_is_a_clear_error(make_ctx: Any) -> None:
    ctx, params = make_ctx("dpo", overrides=SMALL)
    ctx.preferences = []
    with pytest.raises(ValueError, match=r"pairs='offline' needs preference pairs.*pairs=online"):
        dpo.train(ctx, params)

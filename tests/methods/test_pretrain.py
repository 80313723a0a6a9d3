"""The pre-training mix of the online methods (``ptx_coef``, PPO-ptx): off by default, the
language-modelling loss of base-corpus text added with its weight, charged as trained tokens, and
drawn from the world's text by PPO, GRPO and RAFT."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from methods import common, grpo, ppo, raft
from methods.base import Budget, Costs, Decoding, Progress, TrainContext
from methods.params import GRPOParams, PPOParams, RAFTParams
from methods.pretrain import PretrainMix

TEXTS = ["human how do i bake bread assistant one two", "human what is good assistant no"]


def _ctx(policy: Any, tokenizer: Any, pretrain: list[str]) -> TrainContext:
    return TrainContext(
        method="ppo",
        policy=policy,
        reference=None,
        tokenizer=tokenizer,
        reward=lambda prompts, responses: torch.zeros(len(prompts)),
        prompts=[],
        preferences=[],
        budget=Budget(prompts_per_round=1, rounds=1, samples_per_prompt=1, max_new_tokens=4),
        decoding=Decoding(),
        device=torch.device("cpu"),
        seed=0,
        costs=Costs(),
        pretrain=pretrain,
    )


def test_off_by_default_and_leaves_the_loss_alone(policy: Any, tokenizer: Any) -> None:
    assert PPOParams().ptx_coef == GRPOParams().ptx_coef == RAFTParams().ptx_coef == 0.0
    ctx = _ctx(policy, tokenizer, TEXTS)
    loss = torch.tensor(1.5)
    with common.metered(ctx):
        mixed, stats = PretrainMix(ctx, 0.0)(loss)
    assert mixed is loss and stats == {}
    assert ctx.costs.trained_tokens == ctx.costs.forward_tokens == 0  # no pass made


def test_adds_the_weighted_language_modelling_loss(policy: Any, tokenizer: Any) -> None:
    ctx = _ctx(policy, tokenizer, TEXTS)
    mix = PretrainMix(ctx, 0.5, batch_size=2)
    loss = torch.tensor(1.5)
    with common.metered(ctx):
        mixed, stats = mix(loss)
    # the NLL of both texts (the batch of 2 takes each once), computed apart
    ids = [
        tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        for t in TEXTS
    ]
    nll_sum, count = 0.0, 0
    with torch.no_grad():
        for row in ids:
            x = torch.tensor([row])
            logits = policy(input_ids=x).logits[0, :-1]  # [T - 1, V]
            nll_sum += float(torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="sum"))
            count += len(row) - 1
    assert stats["ptx_loss"] == pytest.approx(nll_sum / count, rel=1e-4)
    assert float(mixed.detach()) == pytest.approx(1.5 + 0.5 * nll_sum / count, rel=1e-4)
    assert mixed.requires_grad  # the policy learns from it
    assert ctx.costs.trained_tokens == sum(len(r) for r in ids)  # charged like the method's own


def test_needs_text_when_on(policy: Any, tokenizer: Any) -> None:
    with pytest.raises(ValueError, match=r"ptx_coef 0\.1 needs pre-training text"):
        PretrainMix(_ctx(policy, tokenizer, []), 0.1)
    with pytest.raises(ValueError, match="at least 0"):
        PretrainMix(_ctx(policy, tokenizer, TEXTS), -1.0)
    PretrainMix(_ctx(policy, tokenizer, []), 0.0)  # off: no text needed


@pytest.mark.parametrize(
    ("variant", "train"), [("ppo", ppo.train), ("grpo", grpo.train), ("raft", raft.train)]
)
def test_online_methods_mix_in_the_worlds_text(make_ctx: Any, variant: str, train: Any) -> None:
    ctx, params = make_ctx(
        variant,
        overrides=["budget.rounds=1", "budget.prompts_per_round=4", "budget.max_new_tokens=8"],
    )
    assert len(ctx.pretrain) > 100  # the world's base-corpus texts
    progress: list[Progress] = []
    ctx.progress = progress.append
    train(ctx, params.model_copy(update={"ptx_coef": 0.5}))
    assert progress and all("ptx_loss" in p.stats for p in progress)

"""Deliberately broken methods for the conformance kit's tests: each breaks one rule of the
contract and must fail the check that states it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from methods import common
from methods.base import Method, MethodParams, Train, TrainContext
from methods.params import DPOParams, RAFTParams
from methods.sampling import SampleRequest


def _sft_steps(ctx: TrainContext, lr: float) -> None:
    """One SFT step a round on one policy sample per prompt: a small honest method."""
    step = common.OptimizerStep(ctx, ctx.policy.parameters(), lr, 1.0)
    gen = torch.Generator().manual_seed(ctx.seed)
    for round_, prompts in common.rounds(ctx):
        samples = common.generate(ctx, ctx.policy, prompts, 1, gen)
        logps = common.token_logps(ctx.policy, samples)
        step(common.sft_loss(logps, samples.response_mask), round_)


def train_reference(ctx: TrainContext, params: DPOParams) -> None:
    """Trains the policy, and nudges the frozen reference too."""
    _sft_steps(ctx, params.lr)
    with torch.no_grad():
        for p in ctx.reference.parameters():
            p.add_(1e-3)


def overspend(ctx: TrainContext, params: RAFTParams) -> None:
    """Trains honestly, then draws twice the budget's samples per prompt."""
    _sft_steps(ctx, params.lr)
    gen = torch.Generator().manual_seed(ctx.seed)
    prompts = ctx.prompts[:4]
    common.generate(ctx, ctx.policy, prompts, 2 * ctx.budget.samples_per_prompt * 4, gen)


def greedy(ctx: TrainContext, params: RAFTParams) -> None:
    """Samples greedily, whatever the suite's training decoding."""
    step = common.OptimizerStep(ctx, ctx.policy.parameters(), params.lr, 1.0)
    for round_, prompts in common.rounds(ctx):
        request = SampleRequest(prompts, n=1, max_new_tokens=8, temperature=0.0)
        samples = ctx.generation.sample(ctx.policy, ctx.tokenizer, request, ctx.device)
        common.charge(ctx.costs, samples)
        logps = common.token_logps(ctx.policy, samples)
        step(common.sft_loss(logps, samples.response_mask), round_)


def unseeded(ctx: TrainContext, params: RAFTParams) -> None:
    """Draws from an unseeded generator: two runs with one seed differ."""
    step = common.OptimizerStep(ctx, ctx.policy.parameters(), params.lr, 1.0)
    gen = torch.Generator()
    gen.seed()
    for round_, prompts in common.rounds(ctx):
        samples = common.generate(ctx, ctx.policy, prompts, 1, gen)
        logps = common.token_logps(ctx.policy, samples)
        step(common.sft_loss(logps, samples.response_mask), round_)


@dataclass(frozen=True)
class Inline(Method):
    """A method whose ``train`` is given, not imported from its module."""

    train: Train | None = None

    def train_fn(self) -> Train | None:
        return self.train


def _method(train: Train, params: type[MethodParams], reference: bool = False) -> Method:
    name = train.__name__
    return Inline(
        name=name,
        description=f"Broken on purpose: {name}.",
        params=params,
        module=None,
        needs_reference=reference,
        train=train,
    )


TRAIN_REFERENCE = _method(train_reference, DPOParams, reference=True)
OVERSPEND = _method(overspend, RAFTParams)
GREEDY = _method(greedy, RAFTParams)
UNSEEDED = _method(unseeded, RAFTParams)

"""The offline preference pairs of DPO, IPO, SimPO, ORPO and KTO, and their training loop.

``rounds x prompts_per_round`` of ``ctx.preferences`` in a seeded order, reshuffled when
exhausted, packed once before training, so every offline method under one seed trains on the same
pairs at the same prompt budget (DPO's offline pairs are read here: ``methods.dpo``). The
reference log-probs are computed only for a method that uses a reference: a reference-free one
(SimPO, ORPO) is charged no reference forward pass.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import torch

from methods import common
from methods.base import PreferencePair, TrainContext
from methods.sampling import Samples, pack


@dataclass
class PairRound:
    """One round's pairs in one ``Samples``: pair i is row ``chosen[i]`` preferred over row
    ``rejected[i]``."""

    samples: Samples  # [R] rows
    chosen: torch.Tensor  # [n] row indices (CPU)
    rejected: torch.Tensor  # [n] row indices (CPU)
    ref_logps: torch.Tensor | None  # [R] summed reference log-probs; None for reference-free

    def __len__(self) -> int:
        return len(self.chosen)


BatchLoss = Callable[[TrainContext, PairRound, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]
"""``batch_loss(ctx, pairs, batch [b]) -> (loss, statistics)`` of the pairs ``batch``."""


def pair_order(preferences: list[PreferencePair], count: int, seed: int) -> list[PreferencePair]:
    """The first ``count`` pairs of a seeded shuffle of ``preferences``, reshuffled when
    exhausted."""
    rng = random.Random(seed)
    order: list[PreferencePair] = []
    while len(order) < count:
        fresh = list(preferences)
        rng.shuffle(fresh)
        order += fresh
    return order[:count]


def offline_rounds(ctx: TrainContext, reference: bool, chunk: int) -> list[PairRound]:
    """Each round's pairs, packed (chosen rows then rejected rows), charged as prompts; the
    reference's summed log-probs of every row when ``reference`` (``chunk`` rows a pass)."""
    if not ctx.preferences:
        raise ValueError(
            f"{ctx.method} needs preference pairs, but the suite's data.preferences is empty; "
            "give it a preference dataset"
        )
    b = ctx.budget
    used = pair_order(ctx.preferences, b.rounds * b.prompts_per_round, ctx.seed)
    n = len(used)
    samples = pack(
        ctx.tokenizer,
        [p.prompt for p in used] * 2,
        [p.chosen for p in used] + [p.rejected for p in used],
        ctx.device,
        max_response_tokens=b.max_new_tokens,  # dataset responses get the sampling budget
    )  # [2n]: chosen rows 0..n-1, rejected rows n..2n-1
    ref_logps = None
    if reference:
        with torch.no_grad():
            ref_tokens = common.token_logps(ctx.reference, samples, batch_size=chunk)  # [2n, T]
            ref_logps = common.sequence_logps(ref_tokens, samples.response_mask)  # [2n]
    ctx.costs.prompts += n
    rounds = torch.arange(n).split(b.prompts_per_round)
    return [PairRound(samples, rows, rows + n, ref_logps) for rows in rounds]


def policy_logps(
    ctx: TrainContext, pairs: PairRound, batch: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The policy's token log-probs ``[2b, T]`` of the pairs ``batch`` ``[b]`` (chosen rows then
    rejected rows, one forward pass), their response mask ``[2b, T]`` and their rows ``[2b]``."""
    rows = torch.cat([pairs.chosen[batch], pairs.rejected[batch]])  # [2b]
    both = pairs.samples.select(rows)
    return common.token_logps(ctx.policy, both), both.response_mask, rows


def train_on_pairs(
    ctx: TrainContext,
    batch_loss: BatchLoss,
    *,
    reference: bool,
    lr: float,
    max_grad_norm: float,
    batch_size: int,
    epochs: int,
) -> None:
    """The loop of every offline pair method: each round's pairs, ``epochs`` passes over them
    in seeded shuffled batches of ``batch_size`` pairs, one optimizer step a batch."""
    step = common.OptimizerStep(ctx, ctx.policy.parameters(), lr, max_grad_norm)
    order = torch.Generator().manual_seed(ctx.seed)  # batch shuffles
    rounds = common.checkpointed(ctx, offline_rounds(ctx, reference, 2 * batch_size))
    ctx.policy.train()
    for round_, pairs in enumerate(rounds):
        for _ in range(epochs):
            for batch in common.minibatches(len(pairs), batch_size, order):
                loss, stats = batch_loss(ctx, pairs, batch)
                step(loss, round_, None, stats)
    ctx.policy.eval()

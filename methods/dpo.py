"""DPO: Direct Preference Optimization (Rafailov et al. 2023).

``L = -log sigmoid(beta * ((logp_w - ref_w) - (logp_l - ref_l)))`` over summed response log-probs,
with optional label smoothing (conservative DPO).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from methods import common
from methods.base import TrainContext
from methods.pairs import offline_rounds as offline_pair_rounds
from methods.params import DPOParams
from methods.sampling import Samples


def dpo_loss(
    logps_w: torch.Tensor,
    logps_l: torch.Tensor,
    ref_logps_w: torch.Tensor,
    ref_logps_l: torch.Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair DPO loss (Rafailov et al. 2023, eq. 7) and the implicit rewards, all ``[B]``.

    Inputs ``[B]`` are summed response log-probs of the chosen (w) and rejected (l) responses under
    the policy and the reference. With ``h = (logps_w - ref_logps_w) - (logps_l - ref_logps_l)``:

        ``loss = -(1 - eps) * log sigmoid(beta * h) - eps * log sigmoid(-beta * h)``

    (``eps = label_smoothing``: the conservative DPO of Mitchell 2023, as TRL's "sigmoid" loss;
    ``eps = 0`` is plain DPO). Returns ``(loss [B], chosen_rewards [B], rejected_rewards [B])`` with
    ``chosen_rewards = beta * (logps_w - ref_logps_w)`` (detached), likewise rejected. The caller
    takes the mean.
    """
    logits = (logps_w - ref_logps_w) - (logps_l - ref_logps_l)  # [B]
    loss = -(1 - label_smoothing) * F.logsigmoid(beta * logits) - label_smoothing * F.logsigmoid(
        -beta * logits
    )
    chosen_rewards = beta * (logps_w - ref_logps_w).detach()
    rejected_rewards = beta * (logps_l - ref_logps_l).detach()
    return loss, chosen_rewards, rejected_rewards


@dataclass
class Pairs:
    """Preference pairs laid out in one ``Samples`` (the same prompt layout for both sides): pair
    i is row ``chosen[i]`` preferred over row ``rejected[i]``."""

    samples: Samples  # [R] rows
    chosen: torch.Tensor  # [n] row indices (CPU)
    rejected: torch.Tensor  # [n] row indices (CPU)
    ref_logps: torch.Tensor  # [R] summed reference log-probs of every row
    mean_reward: float | None = None  # RM mean of the round's samples (online), None offline

    def __len__(self) -> int:
        return len(self.chosen)


@torch.no_grad()
def reference_logps(ctx: TrainContext, samples: Samples, chunk: int) -> torch.Tensor:
    """Summed response log-probs ``[R]`` under the frozen reference, ``chunk`` rows a pass."""
    if len(samples) == 0:  # an online round whose rewards all tied
        return torch.zeros(0, device=ctx.device)
    ref_logps = common.token_logps(ctx.reference, samples, batch_size=chunk)  # [R, T]
    return common.sequence_logps(ref_logps, samples.response_mask)


def offline_rounds(ctx: TrainContext, params: DPOParams) -> list[Pairs]:
    """The dataset pairs of every round: ``rounds x prompts_per_round`` of ``ctx.preferences`` in
    a seeded order (reshuffled when exhausted), the same prompt budget as the sampling methods.
    All are packed (chosen rows then rejected rows) and their reference log-probs computed once,
    before training: the offline pairs every pair method shares (``methods.pairs``)."""
    if not ctx.preferences:
        raise ValueError(
            "dpo with pairs='offline' needs preference pairs, but the suite's data.preferences "
            "is empty; give it a preference dataset or set params.pairs=online"
        )
    rounds = offline_pair_rounds(ctx, reference=True, chunk=2 * params.batch_size)
    out = []
    for r in rounds:
        assert r.ref_logps is not None  # asked for: reference=True
        out.append(Pairs(r.samples, r.chosen, r.rejected, r.ref_logps))
    return out


@torch.no_grad()
def online_pairs(
    ctx: TrainContext, prompts: list[str], gen: torch.Generator, params: DPOParams
) -> Pairs:
    """Sample K responses per prompt from the current policy; the best and the worst under the
    reward model form a pair (a prompt whose K rewards all tie gives none)."""
    K = ctx.budget.samples_per_prompt
    samples = common.generate(ctx, ctx.policy, prompts, K, gen)  # [B * K], row i * K + j
    rewards = ctx.reward(samples.prompts, samples.responses).view(len(prompts), K)  # [B, K]
    first = torch.arange(len(prompts)) * K  # [B] row of each prompt's first sample
    keep = rewards.max(dim=1).values > rewards.min(dim=1).values  # [B]
    best = (first + rewards.argmax(dim=1))[keep]  # [n]
    worst = (first + rewards.argmin(dim=1))[keep]  # [n]
    pairs = samples.select(torch.cat([best, worst]))  # [2n]: chosen rows then rejected rows
    n = len(best)
    ref_logps = reference_logps(ctx, pairs, 2 * params.batch_size)  # [2n]
    return Pairs(pairs, torch.arange(n), torch.arange(n, 2 * n), ref_logps, float(rewards.mean()))


def online_rounds(ctx: TrainContext, params: DPOParams) -> Iterator[Pairs]:
    """Each round's pairs, sampled lazily: the policy trained on round r samples round r + 1."""
    gen = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
    for _, prompts in common.rounds(ctx):
        yield online_pairs(ctx, prompts, gen, params)


def batch_loss(
    ctx: TrainContext, pairs: Pairs, batch: torch.Tensor, params: DPOParams
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean ``dpo_loss`` over the pairs ``batch`` ``[b]`` (chosen and rejected rows in one
    forward pass), and its statistics: the mean implicit rewards, their margin and how often the
    chosen one is higher."""
    rows = torch.cat([pairs.chosen[batch], pairs.rejected[batch]])  # [2b]
    both = pairs.samples.select(rows)
    logps = common.sequence_logps(common.token_logps(ctx.policy, both), both.response_mask)  # [2b]
    logps_w, logps_l = logps.chunk(2)  # [b], [b]
    ref_w, ref_l = pairs.ref_logps[rows.to(ctx.device)].chunk(2)  # [b], [b]
    losses, chosen, rejected = dpo_loss(
        logps_w, logps_l, ref_w, ref_l, params.beta, params.label_smoothing
    )
    stats = {
        "chosen_reward": float(chosen.mean()),
        "rejected_reward": float(rejected.mean()),
        "reward_margin": float((chosen - rejected).mean()),
        "reward_accuracy": float((chosen > rejected).float().mean()),
    }
    return losses.mean(), stats


def train(ctx: TrainContext, params: DPOParams) -> None:
    """DPO: each round's pairs (dataset pairs, or best vs worst of K policy samples), ``epochs``
    passes over them in shuffled batches of ``batch_size`` pairs."""
    policy = ctx.policy
    step = common.OptimizerStep(ctx, policy.parameters(), params.lr, params.max_grad_norm)
    order = torch.Generator().manual_seed(ctx.seed)  # batch shuffles
    if params.pairs == "offline":
        rounds = common.checkpointed(ctx, offline_rounds(ctx, params))
    else:
        rounds = online_rounds(ctx, params)  # through common.rounds, checkpointed there
    policy.train()
    for round_, pairs in enumerate(rounds):
        for _ in range(params.epochs):
            for batch in common.minibatches(len(pairs), params.batch_size, order):
                loss, stats = batch_loss(ctx, pairs, batch, params)
                step(loss, round_, pairs.mean_reward, stats, weight=len(batch))  # a mean over pairs
    policy.eval()

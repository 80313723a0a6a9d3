"""RLOO: REINFORCE Leave-One-Out (Ahmadian et al. 2024, "Back to Basics", eq. 6; Kool et al.
2019).

k samples per prompt; each sample's reward includes the KL to the reference,
``r_i = RM(x, y_i) - beta * sum_t (log pi(y_i,t) - log pi_ref(y_i,t))`` (at sampling time), and
its baseline is the mean reward of the other k - 1 samples of its prompt:

    ``A_i = r_i - 1/(k - 1) * sum_{j != i} r_j``,   ``L = -1/N sum_i A_i * log pi(y_i|x)``

the whole response one action (the paper's bandit formulation), its log-probability summed over
its tokens. k is the budget's ``samples_per_prompt``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from methods import common
from methods.base import TrainContext
from methods.params import RLOOParams
from methods.sampling import Samples


def leave_one_out_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """``r_i - mean_{j != i} r_j`` within each prompt's k samples: ``[B, k] -> [B, k]``
    (k >= 2)."""
    k = rewards.shape[1]
    baseline = (rewards.sum(dim=1, keepdim=True) - rewards) / (k - 1)  # [B, k]
    return rewards - baseline


def kl_shaped_rewards(
    scores: torch.Tensor, logps: torch.Tensor, ref_logps: torch.Tensor, beta: float
) -> torch.Tensor:
    """``score - beta * sum_t (logps - ref_logps)``: ``scores [N]``, summed log-probs ``[N]``."""
    return scores - beta * (logps - ref_logps)


def rloo_loss(seq_logps: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """REINFORCE with the given advantages, a scalar: ``-mean_i A_i * log pi(y_i|x)`` over the
    summed log-probs ``[N]`` (advantages ``[N]``, detached here)."""
    return -(advantages.detach() * seq_logps).mean()


@dataclass
class Rollouts:
    """One round's k samples per prompt and their leave-one-out advantages."""

    samples: Samples  # [N = B * k], row i * k + j: the j-th response to prompt i
    scores: torch.Tensor  # [N] reward-model scores
    advantages: torch.Tensor  # [N]
    kl: torch.Tensor  # [N] summed log-ratio to the reference at sampling time


@torch.no_grad()
def rollouts(
    ctx: TrainContext, prompts: list[str], gen: torch.Generator, params: RLOOParams
) -> Rollouts:
    """Sample k per prompt from the current policy, score them, shape the rewards with the KL to
    the reference, and take the leave-one-out advantages."""
    k = ctx.budget.samples_per_prompt
    temperature = common.logp_temperature(ctx.decoding.temperature)
    samples = common.generate(ctx, ctx.policy, prompts, k, gen)  # [N]
    scores = ctx.reward(samples.prompts, samples.responses).to(ctx.device)  # [N]
    chunk = params.mini_batch_size
    mask = samples.response_mask
    logps = common.sequence_logps(common.token_logps(ctx.policy, samples, temperature, chunk), mask)
    ref = common.sequence_logps(
        common.token_logps(ctx.reference, samples, temperature, chunk), mask
    )
    rewards = kl_shaped_rewards(scores, logps, ref, params.beta)  # [N]
    advantages = leave_one_out_advantages(rewards.view(len(prompts), k)).view(-1)  # [N]
    return Rollouts(samples, scores, advantages, logps - ref)


def train(ctx: TrainContext, params: RLOOParams) -> None:
    """RLOO: each round, k samples per prompt from the current policy, then one pass over them
    in shuffled mini-batches of ``mini_batch_size`` samples."""
    if ctx.budget.samples_per_prompt < 2:
        raise ValueError(
            "rloo needs budget.samples_per_prompt >= 2: the leave-one-out baseline of a sample "
            f"is the mean of its prompt's others (got {ctx.budget.samples_per_prompt})"
        )
    policy = ctx.policy
    temperature = common.logp_temperature(ctx.decoding.temperature)
    step = common.OptimizerStep(ctx, policy.parameters(), params.lr, params.max_grad_norm)
    gen = torch.Generator(device=ctx.device).manual_seed(ctx.seed)  # sampling
    order = torch.Generator().manual_seed(ctx.seed)  # mini-batch shuffles
    policy.train()
    for round_, prompts in common.rounds(ctx):
        batch = rollouts(ctx, prompts, gen, params)
        mean_reward = float(batch.scores.mean())
        for rows in common.minibatches(len(batch.samples), params.mini_batch_size, order):
            part = batch.samples.select(rows)
            logps = common.token_logps(policy, part, temperature)  # [M, T]
            seq = common.sequence_logps(logps, part.response_mask)  # [M]
            idx = rows.to(ctx.device)
            loss = rloo_loss(seq, batch.advantages[idx])
            stats = {"kl": float(batch.kl[idx].mean())}
            step(loss, round_, mean_reward, stats)
    policy.eval()

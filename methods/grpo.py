"""GRPO: Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath).

G samples per prompt; advantages normalised within the group; clipped ratio; k3 KL estimator to
the reference ``exp(ref - logp) - (ref - logp) - 1`` with coefficient beta.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from methods import common
from methods.base import TrainContext
from methods.params import GRPOParams
from methods.pretrain import PretrainMix
from methods.sampling import Samples


def group_advantages(rewards: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Group-relative advantages ``(r - mean_G r) / (std_G r + eps)``: ``[B, G] -> [B, G]``.

    Each row holds the G rewards of one prompt's samples (DeepSeekMath eq. 4, outcome
    supervision). ``std`` is the unbiased sample std, as TRL's ``GRPOTrainer``; a group whose
    rewards all tie gets advantage 0.
    """
    mean = rewards.mean(dim=1, keepdim=True)  # [B, 1]
    std = rewards.std(dim=1, keepdim=True)  # [B, 1]
    return (rewards - mean) / (std + eps)


def k3_kl(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(policy || ref): ``exp(ref - logp) - (ref - logp) - 1`` (>= 0,
    unbiased on policy samples; Schulman 2020). Shapes preserved."""
    delta = ref_logps - logps
    return torch.exp(delta) - delta - 1


def grpo_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip: float = 0.2,
    beta: float = 0.04,
) -> tuple[torch.Tensor, dict[str, float]]:
    """GRPO objective, negated (DeepSeekMath eq. 3), a scalar.

    ``logps, old_logps, ref_logps, mask [N, T]`` (token log-probs under the policy being trained,
    the sampling policy and the reference); ``advantages [N]`` one per sample (from
    ``group_advantages``, flattened), the same for all its tokens. Per token, with
    ``rho = exp(logps - old_logps)``,

        ``l_t = -min(rho * A, clip(rho, 1 - clip, 1 + clip) * A) + beta * k3_kl_t``

    Normalisation: the mean over each sequence's real tokens, then the mean over the N sequences,
    i.e. the paper's ``1/G sum_i 1/|o_i| sum_t``. We keep it to match the paper and TRL's original
    GRPO; it weighs a token of a short response more than one of a long response (the length bias
    Dr. GRPO points out), which the token-level mean over the batch would remove.
    """
    ratio = torch.exp(logps - old_logps.detach())  # [N, T]
    adv = advantages.detach()[:, None]  # [N, 1]
    surrogate = torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)  # [N, T]
    kl = k3_kl(logps, ref_logps.detach())  # [N, T]
    per_token = -surrogate + beta * kl
    lengths = mask.sum(dim=1).clamp(min=1)  # [N]
    loss = ((per_token * mask).sum(dim=1) / lengths).mean()
    clipped = ((ratio - 1).abs() > clip).float()
    n_tokens = mask.sum().clamp(min=1)
    stats = {
        "kl": float(((kl * mask).sum() / n_tokens).detach()),
        "clipfrac": float(((clipped * mask).sum() / n_tokens).detach()),
    }
    return loss, stats


@dataclass
class GroupBatch:
    """One round's groups: G samples per prompt, their rewards, advantages and log-probs."""

    samples: Samples  # N = prompts x G rows, row i * G + j: the j-th response to prompt i
    rewards: torch.Tensor  # [N] reward-model scores
    advantages: torch.Tensor  # [N] group-normalised
    mask: torch.Tensor  # [N, T] float, 1 on response tokens
    logps: torch.Tensor | None  # [N, T] at sampling time (the "old" policy); None: on-policy
    ref_logps: torch.Tensor  # [N, T] under the reference


@torch.no_grad()
def sample_groups(
    ctx: TrainContext,
    prompts: list[str],
    group_size: int,
    gen: torch.Generator,
    chunk: int,
    iterations: int = 1,
) -> GroupBatch:
    """Sample a group per prompt, score it, normalise rewards within groups; old and reference
    log-probs once for the whole batch (``chunk`` rows a forward pass)."""
    temperature = common.logp_temperature(ctx.decoding.temperature)
    samples = common.generate(ctx, ctx.policy, prompts, group_size, gen)  # [N = B * G]
    rewards = ctx.reward(samples.prompts, samples.responses).to(ctx.device)  # [N]
    advantages = group_advantages(rewards.view(len(prompts), group_size)).view(-1)  # [N]
    # one mini-batch, one pass: the policy is still the sampling one at its only step, so the
    # "old" log-probs are the current ones, detached (as TRL does); no separate forward pass
    on_policy = len(samples) <= chunk and iterations == 1
    logps = None if on_policy else common.token_logps(ctx.policy, samples, temperature, chunk)
    ref_logps = common.token_logps(ctx.reference, samples, temperature, chunk)  # [N, T]
    mask = samples.response_mask.float()
    return GroupBatch(samples, rewards, advantages, mask, logps, ref_logps)


def minibatch_loss(
    ctx: TrainContext, batch: GroupBatch, rows: torch.Tensor, params: GRPOParams
) -> tuple[torch.Tensor, dict[str, float]]:
    """``grpo_loss`` on the samples ``rows`` ``[M]`` of the batch, and its statistics."""
    logps = common.token_logps(
        ctx.policy, batch.samples.select(rows), common.logp_temperature(ctx.decoding.temperature)
    )
    idx = rows.to(ctx.device)
    old_logps = logps.detach() if batch.logps is None else batch.logps[idx]  # [M, T]
    return grpo_loss(
        logps,  # [M, T]
        old_logps,
        batch.ref_logps[idx],
        batch.advantages[idx],  # [M]
        batch.mask[idx],
        params.clip,
        params.beta,
    )


def train(ctx: TrainContext, params: GRPOParams) -> None:
    """GRPO: each round, a group of G samples per prompt from the current policy, then
    ``iterations`` passes over them in shuffled mini-batches.

    G is ``params.group_size`` when set, else the budget's ``samples_per_prompt`` (the default,
    and the equal-budget setting: a different G samples G per prompt and spends accordingly)."""
    policy = ctx.policy
    group_size = params.group_size or ctx.budget.samples_per_prompt
    step = common.OptimizerStep(ctx, policy.parameters(), params.lr, params.max_grad_norm)
    gen = torch.Generator(device=ctx.device).manual_seed(ctx.seed)  # sampling
    order = torch.Generator().manual_seed(ctx.seed)  # mini-batch shuffles
    ptx = PretrainMix(ctx, params.ptx_coef)  # as PPO-ptx: + gamma * NLL of base-corpus text
    policy.train()
    for round_, prompts in common.rounds(ctx):
        batch = sample_groups(
            ctx, prompts, group_size, gen, params.mini_batch_size, params.iterations
        )
        for _ in range(params.iterations):
            for rows in common.minibatches(len(batch.samples), params.mini_batch_size, order):
                loss, stats = minibatch_loss(ctx, batch, rows, params)
                loss, ptx_stats = ptx(loss)
                rewards = float(batch.rewards.mean())
                step(loss, round_, rewards, {**stats, **ptx_stats}, weight=len(rows))
    policy.eval()

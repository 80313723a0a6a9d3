"""PPO-RLHF (Ouyang et al. 2022, InstructGPT; as in TRL's classic PPOTrainer).

Per-token reward ``r_t = -beta * (logps_t - ref_logps_t)``, plus the reward-model score on the last
response token; GAE advantages; clipped policy and value losses; adaptive or fixed KL coefficient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from methods import common
from methods.base import TrainContext
from methods.common import masked_mean
from methods.params import PPOParams
from methods.pretrain import PretrainMix
from methods.sampling import Samples, positions


def kl_shaped_rewards(
    scores: torch.Tensor,
    logps: torch.Tensor,
    ref_logps: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
) -> torch.Tensor:
    """Per-token rewards ``[B, T]`` (Ziegler et al. 2019; InstructGPT eq. 2; as TRL's classic
    ``compute_rewards``).

    ``r_t = -kl_coef * (logps_t - ref_logps_t)`` on real tokens, plus the reward-model score
    ``scores [B]`` on each row's last real response token; 0 on padding. ``logps, ref_logps,
    mask [B, T]`` right-padded. Detached: these are targets.
    """
    rewards = -kl_coef * (logps - ref_logps).detach() * mask  # [B, T]
    last = (mask.sum(dim=1).long() - 1).clamp(min=0)  # [B]
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last] += scores.detach().to(rewards.dtype)
    return rewards


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016), vectorised over the batch.

    ``rewards, values, mask [B, T]`` right-padded (an episode ends at its last real token, whose
    next value is 0). ``delta_t = r_t + gamma * V_{t+1} - V_t``, ``A_t = delta_t + gamma * lam *
    A_{t+1}``; returns ``A_t + V_t``. Both ``[B, T]``, 0 on padding, detached.
    """
    rewards, values = rewards.detach() * mask, values.detach() * mask
    T = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    next_adv = torch.zeros_like(rewards[:, 0])  # [B]
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(next_adv)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_adv = (delta + gamma * lam * next_adv) * mask[:, t]
        advantages[:, t] = next_adv
    return advantages, (advantages + values) * mask


def ppo_policy_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped surrogate loss (Schulman et al. 2017, eq. 7), masked token mean; and the clip
    fraction. All inputs ``[B, T]``; with ``rho = exp(logps - old_logps)``:
    ``loss = mean_t max(-A * rho, -A * clip(rho, 1 - eps, 1 + eps))``."""
    ratio = torch.exp(logps - old_logps.detach())  # [B, T]
    adv = advantages.detach()
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1 - cliprange, 1 + cliprange)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    clipfrac = masked_mean((clipped > unclipped).float(), mask).detach()
    return loss, clipfrac


def ppo_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange_value: float = 0.2,
) -> torch.Tensor:
    """Clipped value loss, as TRL: ``0.5 * mean_t max((V - R)^2, (V_clip - R)^2)`` with
    ``V_clip = V_old + clip(V - V_old, -c, c)``. All inputs ``[B, T]``."""
    old_values, returns = old_values.detach(), returns.detach()
    clipped = old_values + (values - old_values).clamp(-cliprange_value, cliprange_value)
    loss = torch.max((values - returns) ** 2, (clipped - returns) ** 2)
    return 0.5 * masked_mean(loss, mask)


class AdaptiveKLController:
    """Adaptive KL coefficient (Ziegler et al. 2019, section 2.2):
    ``e = clip(KL / target - 1, -0.2, 0.2); beta *= 1 + e * n_steps / horizon``."""

    def __init__(self, init_kl_coef: float = 0.2, target: float = 6.0, horizon: int = 10000):
        self.value, self.target, self.horizon = init_kl_coef, target, horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1, -0.2), 0.2)
        self.value *= 1 + error * n_steps / self.horizon


class FixedKLController:
    """A constant KL coefficient."""

    def __init__(self, kl_coef: float = 0.2):
        self.value = kl_coef

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


def kl_controller(params: PPOParams) -> AdaptiveKLController | FixedKLController:
    """The controller named by ``params.kl_control``."""
    if params.kl_control == "fixed":
        return FixedKLController(params.init_kl_coef)
    return AdaptiveKLController(params.init_kl_coef, params.target_kl, params.horizon)


class ValueHead(torch.nn.Module):
    """The critic ``V(s_t)``: one linear layer on the policy's last hidden state (TRL's
    ``ValueHead``), float32, zero-initialised so the first value estimates are 0 rather than noise.
    """

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # [B, T, H] -> [B, T]
        return self.linear(hidden.float()).squeeze(-1)


def logps_and_values(
    policy: Any, value_head: ValueHead, samples: Samples, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Response token log-probs and values ``[N, T]`` from ONE forward pass of the policy (0 on
    padding). The value of the state before token t is read off the hidden state that predicts
    token t; log-probs as ``common.token_logps`` (temperature-scaled logits, float32)."""
    T = samples.response_ids.shape[1]
    mask = samples.attention_mask  # [N, P + T]
    out = policy(
        input_ids=samples.input_ids,
        attention_mask=mask,
        position_ids=positions(mask),
        use_cache=False,
        output_hidden_states=True,
    )
    logits = out.logits[:, -(T + 1) : -1, :].float() / temperature  # [N, T, V]
    targets = samples.response_ids[..., None]  # [N, T, 1]
    logps = logits.gather(-1, targets).squeeze(-1) - logits.logsumexp(dim=-1)  # [N, T]
    values = value_head(out.hidden_states[-1][:, -(T + 1) : -1, :])  # [N, T]
    pad = samples.response_mask == 0
    return logps.masked_fill(pad, 0.0), values.masked_fill(pad, 0.0)


@dataclass
class Rollout:
    """One round's experience: samples, their RM scores and the PPO targets."""

    samples: Samples  # N = prompts x K rows
    rewards: torch.Tensor  # [N] reward-model scores
    mask: torch.Tensor  # [N, T] float, 1 on response tokens
    logps: torch.Tensor  # [N, T] log-probs at sampling time (the "old" policy)
    values: torch.Tensor  # [N, T] values at sampling time
    advantages: torch.Tensor  # [N, T] GAE, whitened if asked
    returns: torch.Tensor  # [N, T] value targets
    kl: float  # mean over rollouts of sum_t (logps - ref_logps)


@torch.no_grad()
def rollout(
    ctx: TrainContext,
    value_head: ValueHead,
    prompts: list[str],
    gen: torch.Generator,
    kl_coef: float,
    params: PPOParams,
) -> Rollout:
    """Sample K responses per prompt, score them, and compute KL-shaped rewards and GAE."""
    temperature = common.logp_temperature(ctx.decoding.temperature)
    K = ctx.budget.samples_per_prompt
    samples = common.generate(ctx, ctx.policy, prompts, K, gen)  # [N = B * K], row i * K + j
    rewards = ctx.reward(samples.prompts, samples.responses).to(ctx.device)  # [N]
    mask = samples.response_mask.float()  # [N, T]
    chunks = torch.arange(len(samples)).split(params.mini_batch_size)
    old = [logps_and_values(ctx.policy, value_head, samples.select(c), temperature) for c in chunks]
    logps = torch.cat([lv[0] for lv in old])  # [N, T]
    values = torch.cat([lv[1] for lv in old])  # [N, T]
    ref_logps = common.token_logps(ctx.reference, samples, temperature, params.mini_batch_size)
    token_rewards = kl_shaped_rewards(rewards, logps, ref_logps, mask, kl_coef)  # [N, T]
    advantages, returns = gae(token_rewards, values, mask, params.gamma, params.lam)
    if params.whiten_advantages:
        advantages = common.masked_whiten(advantages, mask)
    kl = float(common.sequence_logps(logps - ref_logps, mask).mean())
    return Rollout(samples, rewards, mask, logps, values, advantages, returns, kl)


def minibatch_loss(
    ctx: TrainContext, value_head: ValueHead, batch: Rollout, rows: torch.Tensor, params: PPOParams
) -> tuple[torch.Tensor, dict[str, float]]:
    """``ppo_policy_loss + vf_coef * ppo_value_loss`` on the rollouts ``rows`` ``[M]``, and its
    statistics: both losses, the clip fraction and the approximate KL to the sampling policy."""
    logps, values = logps_and_values(
        ctx.policy,
        value_head,
        batch.samples.select(rows),
        common.logp_temperature(ctx.decoding.temperature),
    )  # [M, T]
    idx = rows.to(ctx.device)
    mask = batch.mask[idx]  # [M, T]
    old_logps = batch.logps[idx]  # [M, T]
    pg_loss, clipfrac = ppo_policy_loss(
        logps, old_logps, batch.advantages[idx], mask, params.cliprange
    )
    vf_loss = ppo_value_loss(
        values, batch.values[idx], batch.returns[idx], mask, params.cliprange_value
    )
    stats = {
        "policy_loss": float(pg_loss.detach()),
        "value_loss": float(vf_loss.detach()),
        "clipfrac": float(clipfrac),
        "approx_kl": float(masked_mean(0.5 * (logps.detach() - old_logps) ** 2, mask)),
    }
    return pg_loss + params.vf_coef * vf_loss, stats


def train(ctx: TrainContext, params: PPOParams) -> None:
    """PPO-RLHF: each round, a rollout batch from the current policy (K samples per prompt), then
    ``ppo_epochs`` passes over it in shuffled mini-batches; the KL coefficient adapts per batch."""
    policy = ctx.policy
    value_head = ValueHead(policy.config.hidden_size).to(ctx.device)
    trainable = [*policy.parameters(), *value_head.parameters()]
    step = common.OptimizerStep(ctx, trainable, params.lr, params.max_grad_norm)
    kl_ctl = kl_controller(params)
    gen = torch.Generator(device=ctx.device).manual_seed(ctx.seed)  # sampling
    order = torch.Generator().manual_seed(ctx.seed)  # mini-batch shuffles
    ptx = PretrainMix(ctx, params.ptx_coef)  # PPO-ptx: + gamma * NLL of base-corpus text
    policy.train()
    for round_, prompts in common.rounds(ctx):
        batch = rollout(ctx, value_head, prompts, gen, kl_ctl.value, params)
        round_stats = {"kl": batch.kl, "kl_coef": kl_ctl.value}
        for _ in range(params.ppo_epochs):
            for rows in common.minibatches(len(batch.samples), params.mini_batch_size, order):
                loss, stats = minibatch_loss(ctx, value_head, batch, rows, params)
                loss, ptx_stats = ptx(loss)
                tokens = batch.mask[rows.to(ctx.device)].sum()  # both losses: token means
                step(
                    loss,
                    round_,
                    float(batch.rewards.mean()),
                    {**stats, **ptx_stats, **round_stats},
                    tokens,
                )
        kl_ctl.update(batch.kl, n_steps=len(batch.samples))
    policy.eval()

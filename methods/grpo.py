"""GRPO: Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath).

G samples per prompt; advantages normalised within the group; clipped ratio; k3 KL estimator to
the reference ``exp(ref - logp) - (ref - logp) - 1`` with coefficient beta.
"""

from __future__ import annotations

import torch
from pydantic import Field

from methods.base import Method, MethodParams, TrainContext


class GRPOParams(MethodParams):
    """Defaults from the DeepSeekMath paper (beta 0.04, lr 1e-6, clip 0.2)."""

    lr: float = Field(1e-6, gt=0, description="Learning rate (paper: 1e-6).")
    group_size: int | None = Field(
        None, ge=2, description="Samples per prompt; default: the budget's samples_per_prompt."
    )
    beta: float = Field(0.04, ge=0, description="Coefficient of the k3 KL to the reference.")
    clip: float = Field(0.2, gt=0, description="Ratio clip epsilon.")
    iterations: int = Field(1, ge=1, description="Optimisation passes per group batch (mu).")
    mini_batch_size: int = Field(16, ge=1, description="Samples per optimizer step.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")


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


def train(ctx: TrainContext, params: GRPOParams) -> None:
    raise NotImplementedError


METHOD = Method(
    name="grpo",
    description="GRPO: group-normalised advantages, clipped ratio, k3 KL to the reference.",
    params=GRPOParams,
    train=train,
    needs_reference=True,
    source="Shao et al. 2024 (DeepSeekMath)",
)

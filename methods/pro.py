"""PRO: Preference Ranking Optimization (Song et al. 2023).

Candidates sorted by reward, best first; ``s_i`` the length-normalised log-prob;
``L_PRO = -sum_{k=1}^{n-1} log( exp(s_k) / sum_{i>=k} exp(s_i) )`` plus ``sft_weight * L_sft`` on
the best candidate.
"""

from __future__ import annotations

from typing import Any

import torch

from methods import candidates, common
from methods.base import (
    TrainContext,
)
from methods.params import PROParams


def sort_by_reward(
    scores: torch.Tensor, rewards: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``scores, rewards [B, K]`` reordered per row by reward, best first (stable for ties)."""
    order = rewards.argsort(dim=1, descending=True, stable=True)  # [B, K]
    return scores.gather(1, order), rewards.gather(1, order)


def pro_loss(
    scores: torch.Tensor, rewards: torch.Tensor, reward_gap_scaling: bool = True
) -> torch.Tensor:
    """Listwise PRO ranking loss (Song et al. 2023, eq. 6), a scalar.

    ``scores [B, K]`` policy scores (length-normalised log-probs), ``rewards [B, K]``; candidates
    are sorted by reward, best first, inside. With ``s`` and ``r`` sorted,

        ``L = sum_{k=1}^{K-1} mean_B [ -log( exp(s_k) / sum_{i>=k} exp(s_i) ) ]``.

    ``reward_gap_scaling`` follows the official code (AlibabaResearch/DAMO-ConvAI,
    ``PRO/train/utils/process_manager.py``, ``compute_loss``): in the k-th term the logit of each
    worse candidate ``i > k`` is multiplied by the gap ``r_k - r_i`` (>= 0; the paper's
    "temperature" ``1/(r_k - r_i)``) and the logit of ``s_k`` itself by the largest of those gaps,
    ``max_{i>k} (r_k - r_i)`` (the paper's smallest temperature); then the same softmax term.
    So a candidate far below ``k`` in reward is pushed harder, and a term whose rewards all tie
    contributes a constant, no gradient.
    The official code adds ``1e-10`` inside the log; we use ``logsumexp`` instead (stable, same
    value otherwise). Rewards are constants here (detached).
    """
    s, r = sort_by_reward(scores, rewards.detach().to(scores.dtype))  # [B, K]
    total = scores.new_zeros(())
    for k in range(s.shape[1] - 1):
        logits = s[:, k:]  # [B, K - k] the k-th candidate first
        if reward_gap_scaling:
            gaps = r[:, k : k + 1] - r[:, k + 1 :]  # [B, K - k - 1]
            logits = logits * torch.cat([gaps.max(dim=1, keepdim=True).values, gaps], dim=1)
        total = total + (logits.logsumexp(dim=1) - logits[:, 0]).mean()
    return total


def pro_total(
    scores: torch.Tensor,
    rewards: torch.Tensor,
    sft_nll: torch.Tensor,
    sft_weight: float = 0.05,
    reward_gap_scaling: bool = True,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``L = L_PRO + sft_weight * (K - 1)^2 * mean_B(sft_nll)``: ``[B, K], [B, K], [B] -> scalar``.

    ``sft_nll [B]`` is the NLL of each prompt's best candidate; the official code uses its summed
    (not length-normalised) NLL and scales the SFT weight by ``(K - 1)^2``, the number of ranking
    terms squared (``args.sft_weight * math.pow(temp_training_stage - 1, 2) * sft_loss``), which
    we follow so that ``sft_weight = 0.05`` means what it means there.
    """
    rank = pro_loss(scores, rewards, reward_gap_scaling)
    sft = sft_nll.mean()
    loss = rank + sft_weight * (scores.shape[1] - 1) ** 2 * sft
    return loss, {"rank_loss": float(rank.detach()), "sft_loss": float(sft.detach())}


def train(ctx: TrainContext, params: PROParams) -> None:
    """Each round: gather and score the candidates of the round's prompts (``methods.candidates``:
    the K generations split among the generators, plus dataset responses), then ``params.epochs``
    passes over the prompts, a few prompts per optimizer step (``candidates.train_ranked``)."""
    candidates.train_ranked(ctx, params, _loss)


def _loss(
    policy: Any, batch: candidates.Candidates, params: PROParams
) -> tuple[torch.Tensor, dict[str, float]]:
    """PRO loss of a mini-batch of prompts: all candidates in one forward pass, then
    ``pro_total`` per group of prompts with the same number of candidates, weighted by the
    group's share of the prompts (so it is the mean over prompts). Scores are length-normalised
    log-probs; the SFT term is the summed NLL of the best-rewarded candidate (official code)."""
    logps = common.token_logps(policy, batch.samples)  # [N, T]
    mask = batch.samples.response_mask  # [N, T]

    def group_loss(index: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:  # [B_c, c]
        scores = common.mean_logps(logps[index], mask[index])  # [B_c, c]
        rewards = batch.rewards[index]  # [B_c, c]
        best = index.gather(1, rewards.argmax(dim=1, keepdim=True))[:, 0]  # [B_c]
        sft_nll = -common.sequence_logps(logps[best], mask[best])  # [B_c]
        return pro_total(scores, rewards, sft_nll, params.sft_weight, params.reward_gap_scaling)

    return batch.mean_over_prompts(group_loss, logps.new_zeros(()))

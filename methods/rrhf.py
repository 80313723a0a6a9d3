"""RRHF: Rank Responses to align Human Feedback (Yuan et al. 2023).

``p_i = sum_t logp(y_i,t) / |y_i|^length_penalty``;
``L_rank = sum_{r_i < r_j} max(0, p_i - p_j)``; ``L = rank_weight * L_rank + L_ft`` where ``L_ft``
is the NLL of the best-rewarded candidate.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from methods import candidates, common
from methods.base import (
    TrainContext,
)
from methods.params import RRHFParams


def rrhf_scores(
    logps: torch.Tensor,
    mask: torch.Tensor,
    length_norm: Literal["response", "padded"] = "response",
    length_penalty: float = 1.0,
) -> torch.Tensor:
    """Candidate scores ``p_i = sum_t logp(y_i,t) / |y_i|^length_penalty``: ``[B, K, T] -> [B, K]``.

    ``logps [B, K, T]`` token log-probs of K candidates per prompt, ``mask [B, K, T]`` 1 on real
    response tokens. ``'response'``: ``|y_i|`` is the candidate's own length (the paper).
    ``'padded'``: ``|y_i|`` is the padded length ``T`` for every candidate. This mirrors the
    official code, where ``gather_logits_labels`` overwrites the ``-100`` labels in place before
    ``get_score`` counts them, so every padded position counts (there the prompt's too; here the
    response's).
    """
    total = (logps * mask).sum(dim=-1)  # [B, K]
    if length_norm == "padded":
        length = torch.full_like(total, float(mask.shape[-1]))
    else:
        length = mask.sum(dim=-1).to(total.dtype).clamp(min=1)
    return total / length**length_penalty


def rrhf_loss(
    scores: torch.Tensor, rewards: torch.Tensor, best_nll: torch.Tensor, rank_weight: float = 1.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """``L = rank_weight * L_rank + L_ft`` (Yuan et al. 2023, eq. 2-4).

    ``scores [B, K]`` from ``rrhf_scores``; ``rewards [B, K]``; ``best_nll [B]`` the NLL of each
    prompt's best-rewarded candidate (``L_ft``, averaged over B). Per prompt
    ``L_rank = sum_{r_i < r_j} max(0, p_i - p_j)``, averaged over the B prompts (the official code
    sums over the batch; the mean keeps the scale independent of the batch size). Ties in reward
    give no pair.
    """
    diff = scores[:, :, None] - scores[:, None, :]  # [B, K, K] p_i - p_j
    worse = rewards.detach()[:, :, None] < rewards.detach()[:, None, :]  # [B, K, K] r_i < r_j
    rank = (diff.clamp(min=0) * worse).sum(dim=(1, 2)).mean()
    ft = best_nll.mean()
    loss = rank_weight * rank + ft
    return loss, {"rank_loss": float(rank.detach()), "ft_loss": float(ft.detach())}


def train(ctx: TrainContext, params: RRHFParams) -> None:
    """Each round: gather and score the candidates of the round's prompts (``methods.candidates``:
    the K generations split among the generators, plus dataset responses), then ``params.epochs``
    passes over the prompts, a few prompts per optimizer step (``candidates.train_ranked``)."""
    candidates.train_ranked(ctx, params, _loss)


def _loss(
    policy: Any, batch: candidates.Candidates, params: RRHFParams
) -> tuple[torch.Tensor, dict[str, float]]:
    """RRHF loss of a mini-batch of prompts: all candidates in one forward pass, then
    ``rrhf_loss`` per group of prompts with the same number of candidates, weighted by the
    group's share of the prompts (so it is the mean over prompts).

    ``L_ft`` (``best_nll``) is the token-mean NLL of the best-rewarded candidate, the scale of the
    official code's ``-logit_label[max_idx].mean()`` (the paper's eq. writes a sum, which would
    outweigh the ranking term by the response length): the summed NLL divided by the response
    length, or under ``length_norm='padded'`` by the padded length ``T`` (the mini-batch's longest
    candidate), as the official code divides by its padded length (prompt included there).
    """
    logps = common.token_logps(policy, batch.samples)  # [N, T]
    mask = batch.samples.response_mask  # [N, T]

    def group_loss(index: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:  # [B_c, c]
        scores = rrhf_scores(logps[index], mask[index], params.length_norm, params.length_penalty)
        rewards = batch.rewards[index]  # [B_c, c]
        best = index.gather(1, rewards.argmax(dim=1, keepdim=True))  # [B_c, 1]
        best_nll = -rrhf_scores(logps[best], mask[best], params.length_norm, 1.0)[:, 0]  # [B_c]
        return rrhf_loss(scores, rewards, best_nll, params.rank_weight)

    return batch.mean_over_prompts(group_loss, logps.new_zeros(()))

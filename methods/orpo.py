"""ORPO: Monolithic Preference Optimization without Reference Model (Hong et al. 2024, eq. 6-7).

With ``P(y|x) = exp((1/|y|) log pi(y|x))`` (the length-normalised likelihood, as the paper and its
code) and ``odds(y|x) = P(y|x) / (1 - P(y|x))``:

    ``L = L_SFT(y_w) + lambda * L_OR``,  ``L_OR = -log sigmoid(log odds(y_w|x) - log odds(y_l|x))``

``L_SFT`` is the mean token NLL of the chosen responses. No reference model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from methods import common, pairs
from methods.base import TrainContext
from methods.params import ORPOParams


def log_odds(mean_logps: torch.Tensor) -> torch.Tensor:
    """``log(P / (1 - P))`` with ``log P = mean_logps`` ``[B]`` (< 0): ``log P - log(1 - P)``,
    computed as ``log P - log1p(-exp(log P))``."""
    return mean_logps - torch.log1p(-torch.exp(mean_logps))


def odds_ratio_loss(mean_logps_w: torch.Tensor, mean_logps_l: torch.Tensor) -> torch.Tensor:
    """Per-pair ``L_OR = -log sigmoid(log odds(y_w) - log odds(y_l))`` ``[B]`` from the
    length-normalised log-probs ``[B]`` of the chosen (w) and rejected (l) responses."""
    return -F.logsigmoid(log_odds(mean_logps_w) - log_odds(mean_logps_l))


def orpo_loss(
    logps_w: torch.Tensor,  # [B, T] token log-probs of the chosen responses
    mask_w: torch.Tensor,  # [B, T]
    logps_l: torch.Tensor,  # [B, T] token log-probs of the rejected responses
    mask_l: torch.Tensor,  # [B, T]
    lam: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ORPO loss, a scalar ``L_SFT + lambda * mean L_OR``, and the per-pair ``L_OR`` ``[B]``."""
    sft = common.sft_loss(logps_w, mask_w)
    ratio = odds_ratio_loss(common.mean_logps(logps_w, mask_w), common.mean_logps(logps_l, mask_l))
    return sft + lam * ratio.mean(), ratio


def batch_loss(
    ctx: TrainContext, round_: pairs.PairRound, batch: torch.Tensor, params: ORPOParams
) -> tuple[torch.Tensor, dict[str, float]]:
    """``orpo_loss`` of the pairs ``batch`` ``[b]``, and its odds-ratio term."""
    logps, mask, _ = pairs.policy_logps(ctx, round_, batch)  # [2b, T]
    logps_w, logps_l = logps.chunk(2)
    mask_w, mask_l = mask.chunk(2)
    loss, ratio = orpo_loss(logps_w, mask_w, logps_l, mask_l, params.lam)
    return loss, {"odds_ratio_loss": float(ratio.detach().mean())}


def train(ctx: TrainContext, params: ORPOParams) -> None:
    """ORPO on the dataset's preference pairs (``methods.pairs``); no reference is used."""
    pairs.train_on_pairs(
        ctx,
        lambda c, r, b: batch_loss(c, r, b, params),
        reference=False,
        lr=params.lr,
        max_grad_norm=params.max_grad_norm,
        batch_size=params.batch_size,
        epochs=params.epochs,
    )

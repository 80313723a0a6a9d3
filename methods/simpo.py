"""SimPO: Simple Preference Optimization with a reference-free reward (Meng et al. 2024, eq. 6).

The implicit reward is the length-normalised log-likelihood ``r(x, y) = beta / |y| * log pi(y|x)``
(no reference model), and a target margin ``gamma`` separates the chosen from the rejected:

    ``L = -log sigmoid(beta / |y_w| * log pi(y_w|x) - beta / |y_l| * log pi(y_l|x) - gamma)``
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from methods import common, pairs
from methods.base import TrainContext
from methods.params import SimPOParams


def simpo_loss(
    mean_logps_w: torch.Tensor, mean_logps_l: torch.Tensor, beta: float = 2.0, gamma: float = 1.0
) -> torch.Tensor:
    """Per-pair SimPO loss ``[B]`` from the length-normalised log-probs ``(1/|y|) log pi(y|x)``
    ``[B]`` of the chosen (w) and rejected (l) responses."""
    return -F.logsigmoid(beta * mean_logps_w - beta * mean_logps_l - gamma)


def batch_loss(
    ctx: TrainContext, round_: pairs.PairRound, batch: torch.Tensor, params: SimPOParams
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean ``simpo_loss`` over the pairs ``batch`` ``[b]``, and the mean reward margin."""
    logps, mask, _ = pairs.policy_logps(ctx, round_, batch)  # [2b, T]
    mean_w, mean_l = common.mean_logps(logps, mask).chunk(2)  # [b], [b]
    losses = simpo_loss(mean_w, mean_l, params.beta, params.gamma)
    margin = (params.beta * (mean_w - mean_l)).detach()
    return losses.mean(), {"reward_margin": float(margin.mean())}


def train(ctx: TrainContext, params: SimPOParams) -> None:
    """SimPO on the dataset's preference pairs (``methods.pairs``); no reference is used."""
    pairs.train_on_pairs(
        ctx,
        lambda c, r, b: batch_loss(c, r, b, params),
        reference=False,
        lr=params.lr,
        max_grad_norm=params.max_grad_norm,
        batch_size=params.batch_size,
        epochs=params.epochs,
    )

"""R-DPO (Park et al. 2024, eq. 9): DPO with a regulariser on the response lengths.

With ``h = (log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l))`` (summed log-probs)
and ``|y|`` the response length in tokens:

    ``L = -log sigmoid(beta * h - alpha * (|y_w| - |y_l|))``

A chosen response longer than the rejected one must win by a larger margin: the loss no longer
rewards length for its own sake. ``alpha = 0`` is DPO. Built from the harness's shared pieces:
the offline pairs and their loop (``methods.pairs``), the log-probs (``methods.common``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness_rdpo.params import RDPOParams
from methods import common, pairs
from methods.base import TrainContext


def rdpo_loss(
    logps_w: torch.Tensor,
    logps_l: torch.Tensor,
    ref_logps_w: torch.Tensor,
    ref_logps_l: torch.Tensor,
    lengths_w: torch.Tensor,
    lengths_l: torch.Tensor,
    beta: float = 0.1,
    alpha: float = 0.01,
) -> torch.Tensor:
    """Per-pair R-DPO loss ``[B]`` from summed log-probs ``[B]`` and response lengths ``[B]``."""
    h = (logps_w - ref_logps_w) - (logps_l - ref_logps_l)  # [B]
    return -F.logsigmoid(beta * h - alpha * (lengths_w - lengths_l))


def batch_loss(
    ctx: TrainContext, round_: pairs.PairRound, batch: torch.Tensor, params: RDPOParams
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean ``rdpo_loss`` over the pairs ``batch`` ``[b]``, and the mean length difference."""
    logps, mask, rows = pairs.policy_logps(ctx, round_, batch)  # [2b, T], [2b, T], [2b]
    assert round_.ref_logps is not None
    seq_w, seq_l = common.sequence_logps(logps, mask).chunk(2)  # [b], [b]
    ref_w, ref_l = round_.ref_logps[rows.to(ctx.device)].chunk(2)  # [b], [b]
    len_w, len_l = mask.sum(dim=-1).float().chunk(2)  # [b], [b]
    losses = rdpo_loss(seq_w, seq_l, ref_w, ref_l, len_w, len_l, params.beta, params.alpha)
    return losses.mean(), {"length_gap": float((len_w - len_l).mean())}


def train(ctx: TrainContext, params: RDPOParams) -> None:
    """R-DPO on the dataset's preference pairs, in DPO's rounds and batches."""
    pairs.train_on_pairs(
        ctx,
        lambda c, r, b: batch_loss(c, r, b, params),
        reference=True,
        lr=params.lr,
        max_grad_norm=params.max_grad_norm,
        batch_size=params.batch_size,
        epochs=params.epochs,
    )

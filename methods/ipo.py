"""IPO: Identity Preference Optimisation (Azar et al. 2023, "A General Theoretical Paradigm to
Understand Learning from Human Preferences", eq. 17).

With ``h = log(pi(y_w) / pi_ref(y_w)) - log(pi(y_l) / pi_ref(y_l))``, the loss of a pair is

    ``L = (h - 1 / (2 * tau))^2``

a regression of the log-ratio margin onto a fixed target, where DPO's logistic loss keeps pushing
it towards infinity once the preference is deterministic (the paper's argument for IPO).

**Summed or averaged log-probs.** The paper's ``h`` is written over sequence log-likelihoods
``log pi(y|x)``: summed token log-probs, the default here (``logps="sum"``), which also keeps
DPO's scale so that one ``beta`` means the same strength in both. TRL's ``ipo`` loss averages
token log-probs over each response instead (``logps="mean"``), which removes the length from the
margin but makes the target ``1/(2 tau)`` a per-token log-ratio, tens of times harder to reach;
it is offered for comparison with TRL.
"""

from __future__ import annotations

import torch

from methods import common, pairs
from methods.base import TrainContext
from methods.params import IPOParams


def ipo_loss(
    logps_w: torch.Tensor,
    logps_l: torch.Tensor,
    ref_logps_w: torch.Tensor,
    ref_logps_l: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """Per-pair IPO loss ``(h - 1/(2 beta))^2`` ``[B]`` from the chosen (w) and rejected (l)
    log-probs ``[B]`` under the policy and the reference (``beta`` is the paper's tau)."""
    h = (logps_w - ref_logps_w) - (logps_l - ref_logps_l)  # [B]
    return (h - 1 / (2 * beta)) ** 2


def batch_loss(
    ctx: TrainContext, round_: pairs.PairRound, batch: torch.Tensor, params: IPOParams
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean ``ipo_loss`` over the pairs ``batch`` ``[b]``, and the mean margin ``h``."""
    logps, mask, rows = pairs.policy_logps(ctx, round_, batch)  # [2b, T], [2b, T], [2b]
    assert round_.ref_logps is not None
    ref = round_.ref_logps[rows.to(ctx.device)]  # [2b] summed
    if params.logps == "mean":
        seq = common.mean_logps(logps, mask)  # [2b]
        ref = ref / mask.sum(dim=-1).clamp(min=1)
    else:
        seq = common.sequence_logps(logps, mask)  # [2b]
    logps_w, logps_l = seq.chunk(2)
    ref_w, ref_l = ref.chunk(2)
    losses = ipo_loss(logps_w, logps_l, ref_w, ref_l, params.beta)
    margin = ((logps_w - ref_w) - (logps_l - ref_l)).detach()
    return losses.mean(), {"margin": float(margin.mean())}


def train(ctx: TrainContext, params: IPOParams) -> None:
    """IPO on the dataset's preference pairs (``methods.pairs``)."""
    pairs.train_on_pairs(
        ctx,
        lambda c, r, b: batch_loss(c, r, b, params),
        reference=True,
        lr=params.lr,
        max_grad_norm=params.max_grad_norm,
        batch_size=params.batch_size,
        epochs=params.epochs,
    )

"""DPO: Direct Preference Optimization (Rafailov et al. 2023).

``L = -log sigmoid(beta * ((logp_w - ref_w) - (logp_l - ref_l)))`` over summed response log-probs,
with optional label smoothing (conservative DPO).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from methods.base import Method, MethodParams, TrainContext


class DPOParams(MethodParams):
    """Defaults from the paper (beta 0.1, lr 1e-6 with RMSprop; we use AdamW)."""

    lr: float = Field(1e-6, gt=0, description="Learning rate (paper: 1e-6).")
    beta: float = Field(0.1, gt=0, description="KL strength beta.")
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="Conservative-DPO epsilon.")
    pairs: Literal["offline", "online"] = Field(
        "offline",
        description="'offline': dataset preference pairs; 'online': best/worst of K policy "
        "samples.",
    )
    batch_size: int = Field(8, ge=1, description="Pairs per optimizer step.")
    epochs: int = Field(1, ge=1, description="Passes over each round's pairs.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")


def dpo_loss(
    logps_w: torch.Tensor,
    logps_l: torch.Tensor,
    ref_logps_w: torch.Tensor,
    ref_logps_l: torch.Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair DPO loss (Rafailov et al. 2023, eq. 7) and the implicit rewards, all ``[B]``.

    Inputs ``[B]`` are summed response log-probs of the chosen (w) and rejected (l) responses under
    the policy and the reference. With ``h = (logps_w - ref_logps_w) - (logps_l - ref_logps_l)``:

        ``loss = -(1 - eps) * log sigmoid(beta * h) - eps * log sigmoid(-beta * h)``

    (``eps = label_smoothing``: the conservative DPO of Mitchell 2023, as TRL's "sigmoid" loss;
    ``eps = 0`` is plain DPO). Returns ``(loss [B], chosen_rewards [B], rejected_rewards [B])`` with
    ``chosen_rewards = beta * (logps_w - ref_logps_w)`` (detached), likewise rejected. The caller
    takes the mean.
    """
    logits = (logps_w - ref_logps_w) - (logps_l - ref_logps_l)  # [B]
    loss = -(1 - label_smoothing) * F.logsigmoid(beta * logits) - label_smoothing * F.logsigmoid(
        -beta * logits
    )
    chosen_rewards = beta * (logps_w - ref_logps_w).detach()
    rejected_rewards = beta * (logps_l - ref_logps_l).detach()
    return loss, chosen_rewards, rejected_rewards


def train(ctx: TrainContext, params: DPOParams) -> None:
    raise NotImplementedError


METHOD = Method(
    name="dpo",
    description="DPO: logistic loss on the policy/reference log-ratio margin of preference pairs.",
    params=DPOParams,
    train=train,
    needs_reference=True,
    source="Rafailov et al. 2023",
)

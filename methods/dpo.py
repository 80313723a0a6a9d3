"""DPO: Direct Preference Optimization (Rafailov et al. 2023).

``L = -log sigmoid(beta * ((logp_w - ref_w) - (logp_l - ref_l)))`` over summed response log-probs,
with optional label smoothing (conservative DPO).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from methods.base import Method, MethodParams, TrainContext


class DPOParams(MethodParams):
    """Defaults from the paper (beta 0.1, lr 1e-6 with RMSprop; we use AdamW)."""

    lr: float = Field(1e-6, gt=0, description="Learning rate (paper: 1e-6).")
    beta: float = Field(0.1, gt=0, description="KL strength beta.")
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="Conservative-DPO epsilon.")
    pairs: Literal["offline", "online"] = Field(
        "offline",
        description="'offline': dataset preference pairs; 'online': best/worst of K policy samples.",
    )
    batch_size: int = Field(8, ge=1, description="Pairs per optimizer step.")
    epochs: int = Field(1, ge=1, description="Passes over each round's pairs.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")


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

"""RRHF: Rank Responses to align Human Feedback (Yuan et al. 2023).

``p_i = sum_t logp(y_i,t) / |y_i|^length_penalty``;
``L_rank = sum_{r_i < r_j} max(0, p_i - p_j)``; ``L = rank_weight * L_rank + L_ft`` where ``L_ft`` is
the NLL of the best-rewarded candidate.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from methods.base import Method, MethodParams, TrainContext


class RRHFParams(MethodParams):
    """Defaults from the paper and the official code (GanjinZero/RRHF)."""

    lr: float = Field(2e-5, gt=0, description="AdamW learning rate (official train script).")
    rank_weight: float = Field(1.0, ge=0, description="Weight of the ranking loss (paper: 1).")
    length_penalty: float = Field(1.0, ge=0, description="Exponent of the length normaliser.")
    length_norm: Literal["response", "padded"] = Field(
        "response",
        description="'response': divide by the response length (paper); 'padded': by the padded "
        "length, as the official code does.",
    )
    candidates: list[Literal["policy", "chosen", "rejected", "reference"]] = Field(
        default_factory=lambda: ["policy", "reference"],
        description="Generators of the candidates ranked per prompt.",
    )
    epochs: int = Field(1, ge=1, description="Passes over each round's candidates.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")


def train(ctx: TrainContext, params: RRHFParams) -> None:
    raise NotImplementedError


METHOD = Method(
    name="rrhf",
    description="RRHF: hinge ranking loss on length-normalised log-probs plus SFT on the best candidate.",
    params=RRHFParams,
    train=train,
    needs_reference=False,
    source="Yuan et al. 2023; github.com/GanjinZero/RRHF",
)

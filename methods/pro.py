"""PRO: Preference Ranking Optimization (Song et al. 2023).

Candidates sorted by reward, best first; ``s_i`` the length-normalised log-prob;
``L_PRO = -sum_{k=1}^{n-1} log( exp(s_k) / sum_{i>=k} exp(s_i) )`` plus ``sft_weight * L_sft`` on the
best candidate.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from methods.base import Method, MethodParams, TrainContext


class PROParams(MethodParams):
    """Defaults from the paper and the official code (AlibabaResearch/DAMO-ConvAI/PRO)."""

    lr: float = Field(5e-6, gt=0, description="AdamW learning rate (official code).")
    sft_weight: float = Field(0.05, ge=0, description="Coefficient beta of the SFT term.")
    reward_gap_scaling: bool = Field(
        True,
        description="Scale each logit by the reward gap to the k-th candidate (temperature "
        "1/(r_k - r_i), the largest gap for s_k itself), as the official code does.",
    )
    candidates: list[Literal["policy", "chosen", "rejected", "reference"]] = Field(
        default_factory=lambda: ["policy", "reference"],
        description="Generators of the candidates ranked per prompt.",
    )
    epochs: int = Field(1, ge=1, description="Passes over each round's candidates.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")


def train(ctx: TrainContext, params: PROParams) -> None:
    raise NotImplementedError


METHOD = Method(
    name="pro",
    description="PRO: listwise Plackett-Luce ranking of candidates plus SFT on the best.",
    params=PROParams,
    train=train,
    needs_reference=False,
    source="Song et al. 2023; AlibabaResearch/DAMO-ConvAI/PRO",
)

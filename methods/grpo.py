"""GRPO: Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath).

G samples per prompt; advantages normalised within the group; clipped ratio; k3 KL estimator to
the reference ``exp(ref - logp) - (ref - logp) - 1`` with coefficient beta.
"""

from __future__ import annotations

from pydantic import Field

from methods.base import Method, MethodParams, TrainContext


class GRPOParams(MethodParams):
    """Defaults from the DeepSeekMath paper (beta 0.04, lr 1e-6, clip 0.2)."""

    lr: float = Field(1e-6, gt=0, description="Learning rate (paper: 1e-6).")
    group_size: int | None = Field(
        None, ge=2, description="Samples per prompt; default: the budget's samples_per_prompt."
    )
    beta: float = Field(0.04, ge=0, description="Coefficient of the k3 KL to the reference.")
    clip: float = Field(0.2, gt=0, description="Ratio clip epsilon.")
    iterations: int = Field(1, ge=1, description="Optimisation passes per group batch (mu).")
    mini_batch_size: int = Field(16, ge=1, description="Samples per optimizer step.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")


def train(ctx: TrainContext, params: GRPOParams) -> None:
    raise NotImplementedError


METHOD = Method(
    name="grpo",
    description="GRPO: group-normalised advantages, clipped ratio, k3 KL to the reference.",
    params=GRPOParams,
    train=train,
    needs_reference=True,
    source="Shao et al. 2024 (DeepSeekMath)",
)

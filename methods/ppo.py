"""PPO-RLHF (Ouyang et al. 2022, InstructGPT; as in TRL's classic PPOTrainer).

Per-token reward ``r_t = -beta * (logps_t - ref_logps_t)``, plus the reward-model score on the last
response token; GAE advantages; clipped policy and value losses; adaptive or fixed KL coefficient.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from methods.base import Method, MethodParams, TrainContext


class PPOParams(MethodParams):
    """Defaults from TRL's classic ``PPOConfig`` (v0.7) unless stated."""

    lr: float = Field(1.41e-5, gt=0, description="Adam learning rate (TRL PPOConfig).")
    kl_control: Literal["adaptive", "fixed"] = Field(
        "adaptive", description="Adaptive KL controller (Ziegler et al. 2019) or a fixed beta."
    )
    init_kl_coef: float = Field(0.2, ge=0, description="Initial (or fixed) KL coefficient beta.")
    target_kl: float = Field(6.0, gt=0, description="Target KL of the adaptive controller.")
    horizon: int = Field(10000, gt=0, description="Horizon of the adaptive controller.")
    gamma: float = Field(1.0, ge=0, le=1, description="GAE discount.")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda.")
    cliprange: float = Field(0.2, gt=0, description="Policy ratio clip epsilon.")
    cliprange_value: float = Field(0.2, gt=0, description="Value clip range.")
    vf_coef: float = Field(0.1, ge=0, description="Value loss coefficient.")
    ppo_epochs: int = Field(4, ge=1, description="Optimisation epochs per rollout batch.")
    mini_batch_size: int = Field(16, ge=1, description="Rollouts per optimizer step.")
    whiten_advantages: bool = Field(True, description="Whiten advantages over the batch.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")


def train(ctx: TrainContext, params: PPOParams) -> None:
    raise NotImplementedError


METHOD = Method(
    name="ppo",
    description="PPO-RLHF: KL-shaped RM reward, GAE, clipped policy/value losses, adaptive KL.",
    params=PPOParams,
    train=train,
    needs_reference=True,
    source="Ouyang et al. 2022; TRL PPOTrainer (classic)",
)

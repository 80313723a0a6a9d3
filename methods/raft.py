"""RAFT: Reward rAnked FineTuning (Dong et al. 2023).

Each round: sample K responses per prompt, score them, keep the best per prompt (``local``) or the
top fraction of the batch (``global``), and fine-tune on what was kept.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from methods.base import Method, MethodParams, TrainContext


class RAFTParams(MethodParams):
    """Defaults from the paper and LMFlow's RAFT aligner."""

    lr: float = Field(2e-5, gt=0, description="AdamW learning rate (LMFlow).")
    selection: Literal["local", "global"] = Field(
        "local", description="'local': best of K per prompt; 'global': top fraction of the batch."
    )
    top_fraction: float = Field(
        0.125, gt=0, le=1, description="Share kept under 'global' selection (paper: 1/K)."
    )
    train_prompt_tokens: bool = Field(
        False, description="Also train on prompt tokens (as LMFlow's fine-tuning does)."
    )
    epochs: int = Field(1, ge=1, description="Fine-tuning passes over each round's kept samples.")
    batch_size: int = Field(8, ge=1, description="Samples per optimizer step.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")


def train(ctx: TrainContext, params: RAFTParams) -> None:
    raise NotImplementedError


METHOD = Method(
    name="raft",
    description="RAFT: sample K, keep the reward-best (per prompt or globally), fine-tune on them.",
    params=RAFTParams,
    train=train,
    needs_reference=False,
    source="Dong et al. 2023; LMFlow",
)

"""Every built-in method's hyperparameters, in torch-free models: the suite schema validates them
and ``harness methods`` lists them without importing a training loop. Each method's module
(``methods/<name>.py``) holds its loss and its ``train``, and names its params from here.

Defaults come from the paper or the official code; every field has a help text.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from methods.base import (
    MAX_BATCH,
    MAX_EPOCHS,
    MAX_SAMPLES,
    CandidateList,
    MethodParams,
    default_candidates,
)

# Upper bounds of the methods' rates and coefficients, like the counts of ``methods.base``: a value
# beyond them is a typo or an attack, never a plan. A learning rate costs nothing more when it is
# absurd, it only diverges, and a diverged run is reported as a failed run (the test of failure
# isolation makes one with 1e12, since up to 1e6 the tiny world's runs still finish): its bound
# only stops a runaway exponent.
MAX_LR = 1e12  # learning rate of every optimizer
MAX_COEF = 1000.0  # a loss term's weight or a KL coefficient (beta)
MAX_CLIP = 100.0  # a ratio or value clip range
MAX_GRAD_NORM = 1e6  # gradient clipping norm
MAX_KL = 1e6  # target KL of PPO's adaptive controller, in nats
MAX_HORIZON = 10**9  # steps of PPO's adaptive controller
MAX_LENGTH_PENALTY = 10.0  # exponent of RRHF's length normaliser


def ptx_coef_field() -> Any:
    """The weight γ of the pre-training mix of the online methods (``methods.pretrain``)."""
    return Field(
        0.0,
        ge=0,
        le=MAX_COEF,
        description="Weight of a language-modelling loss on base-corpus text added to the "
        "method's loss (PPO-ptx, InstructGPT); 0: off.",
    )


class SFTParams(MethodParams):
    """No hyperparameters: nothing is trained."""


class BestOfNParams(MethodParams):
    n: int = Field(
        8, ge=1, le=MAX_SAMPLES, description="Samples drawn per prompt at inference time."
    )


class PPOParams(MethodParams):
    """Defaults from TRL's classic ``PPOConfig`` (v0.7) unless stated."""

    lr: float = Field(1.41e-5, gt=0, le=MAX_LR, description="Adam learning rate (TRL PPOConfig).")
    kl_control: Literal["adaptive", "fixed"] = Field(
        "adaptive", description="Adaptive KL controller (Ziegler et al. 2019) or a fixed beta."
    )
    init_kl_coef: float = Field(
        0.2, ge=0, le=MAX_COEF, description="Initial (or fixed) KL coefficient beta."
    )
    target_kl: float = Field(
        6.0, gt=0, le=MAX_KL, description="Target KL of the adaptive controller."
    )
    horizon: int = Field(
        10000, gt=0, le=MAX_HORIZON, description="Horizon of the adaptive controller."
    )
    gamma: float = Field(1.0, ge=0, le=1, description="GAE discount.")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda.")
    cliprange: float = Field(0.2, gt=0, le=MAX_CLIP, description="Policy ratio clip epsilon.")
    cliprange_value: float = Field(0.2, gt=0, le=MAX_CLIP, description="Value clip range.")
    vf_coef: float = Field(0.1, ge=0, le=MAX_COEF, description="Value loss coefficient.")
    ppo_epochs: int = Field(
        4, ge=1, le=MAX_EPOCHS, description="Optimisation epochs per rollout batch."
    )
    mini_batch_size: int = Field(16, ge=1, le=MAX_BATCH, description="Rollouts per optimizer step.")
    whiten_advantages: bool = Field(True, description="Whiten advantages over the batch.")
    max_grad_norm: float = Field(1.0, gt=0, le=MAX_GRAD_NORM, description="Gradient clipping norm.")
    ptx_coef: float = ptx_coef_field()


class RRHFParams(MethodParams):
    """Defaults from the paper and the official code (GanjinZero/RRHF)."""

    lr: float = Field(
        2e-5, gt=0, le=MAX_LR, description="AdamW learning rate (official train script)."
    )
    rank_weight: float = Field(
        1.0, ge=0, le=MAX_COEF, description="Weight of the ranking loss (paper: 1)."
    )
    length_penalty: float = Field(
        1.0, ge=0, le=MAX_LENGTH_PENALTY, description="Exponent of the length normaliser."
    )
    length_norm: Literal["response", "padded"] = Field(
        "response",
        description="'response': divide by the response length (paper); 'padded': by the padded "
        "length, as the official code does.",
    )
    candidates: CandidateList = Field(
        default_factory=default_candidates,
        description="Generators of the candidates ranked per prompt.",
    )
    epochs: int = Field(1, ge=1, le=MAX_EPOCHS, description="Passes over each round's candidates.")
    max_grad_norm: float = Field(1.0, gt=0, le=MAX_GRAD_NORM, description="Gradient clipping norm.")


class RAFTParams(MethodParams):
    """Defaults from the paper and LMFlow's RAFT aligner."""

    lr: float = Field(2e-5, gt=0, le=MAX_LR, description="AdamW learning rate (LMFlow).")
    selection: Literal["local", "global"] = Field(
        "local", description="'local': best of K per prompt; 'global': top fraction of the batch."
    )
    top_fraction: float = Field(
        0.125, gt=0, le=1, description="Share kept under 'global' selection (paper: 1/K)."
    )
    train_prompt_tokens: bool = Field(
        False, description="Also train on prompt tokens (as LMFlow's fine-tuning does)."
    )
    epochs: int = Field(
        1, ge=1, le=MAX_EPOCHS, description="Fine-tuning passes over each round's kept samples."
    )
    batch_size: int = Field(8, ge=1, le=MAX_BATCH, description="Samples per optimizer step.")
    max_grad_norm: float = Field(1.0, gt=0, le=MAX_GRAD_NORM, description="Gradient clipping norm.")
    ptx_coef: float = ptx_coef_field()


class PROParams(MethodParams):
    """Defaults from the paper and the official code (AlibabaResearch/DAMO-ConvAI/PRO)."""

    lr: float = Field(5e-6, gt=0, le=MAX_LR, description="AdamW learning rate (official code).")
    sft_weight: float = Field(
        0.05, ge=0, le=MAX_COEF, description="Coefficient beta of the SFT term."
    )
    reward_gap_scaling: bool = Field(
        True,
        description="Scale each logit by the reward gap to the k-th candidate (temperature "
        "1/(r_k - r_i), the largest gap for s_k itself), as the official code does.",
    )
    candidates: CandidateList = Field(
        default_factory=default_candidates,
        description="Generators of the candidates ranked per prompt.",
    )
    epochs: int = Field(1, ge=1, le=MAX_EPOCHS, description="Passes over each round's candidates.")
    max_grad_norm: float = Field(1.0, gt=0, le=MAX_GRAD_NORM, description="Gradient clipping norm.")


class DPOParams(MethodParams):
    """Defaults from the paper (beta 0.1, lr 1e-6 with RMSprop; we use AdamW)."""

    lr: float = Field(1e-6, gt=0, le=MAX_LR, description="Learning rate (paper: 1e-6).")
    beta: float = Field(0.1, gt=0, le=MAX_COEF, description="KL strength beta.")
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="Conservative-DPO epsilon.")
    pairs: Literal["offline", "online"] = Field(
        "offline",
        description="'offline': dataset preference pairs; 'online': best/worst of K policy "
        "samples.",
    )
    batch_size: int = Field(8, ge=1, le=MAX_BATCH, description="Pairs per optimizer step.")
    epochs: int = Field(1, ge=1, le=MAX_EPOCHS, description="Passes over each round's pairs.")
    max_grad_norm: float = Field(1.0, gt=0, le=MAX_GRAD_NORM, description="Gradient clipping norm.")


class GRPOParams(MethodParams):
    """Defaults from the DeepSeekMath paper (beta 0.04, lr 1e-6, clip 0.2)."""

    lr: float = Field(1e-6, gt=0, le=MAX_LR, description="Learning rate (paper: 1e-6).")
    group_size: int | None = Field(
        None,
        ge=2,
        le=MAX_SAMPLES,
        description="Samples per prompt; default: the budget's samples_per_prompt.",
    )
    beta: float = Field(
        0.04, ge=0, le=MAX_COEF, description="Coefficient of the k3 KL to the reference."
    )
    clip: float = Field(0.2, gt=0, le=MAX_CLIP, description="Ratio clip epsilon.")
    iterations: int = Field(
        1, ge=1, le=MAX_EPOCHS, description="Optimisation passes per group batch (mu)."
    )
    mini_batch_size: int = Field(16, ge=1, le=MAX_BATCH, description="Samples per optimizer step.")
    max_grad_norm: float = Field(1.0, gt=0, le=MAX_GRAD_NORM, description="Gradient clipping norm.")
    ptx_coef: float = ptx_coef_field()


class IPOParams(MethodParams):
    """IPO has no LLM experiments in its paper: beta 0.1 and lr 1e-6 as DPO (and TRL's
    ``loss_type="ipo"``)."""

    lr: float = Field(1e-6, gt=0, le=MAX_LR, description="Learning rate (as DPO: 1e-6).")
    beta: float = Field(
        0.1, gt=0, le=MAX_COEF, description="Regularisation tau: the margin is pulled to 1/(2 tau)."
    )
    logps: Literal["sum", "mean"] = Field(
        "sum",
        description="'sum': sequence log-probs, as the paper's h; 'mean': per-token averages, as "
        "TRL's ipo loss.",
    )
    batch_size: int = Field(8, ge=1, le=MAX_BATCH, description="Pairs per optimizer step.")
    epochs: int = Field(1, ge=1, le=MAX_EPOCHS, description="Passes over each round's pairs.")
    max_grad_norm: float = Field(1.0, gt=0, le=MAX_GRAD_NORM, description="Gradient clipping norm.")


class SimPOParams(MethodParams):
    """Defaults from the paper and its code (princeton-nlp/SimPO): beta 2.0, gamma/beta 0.5."""

    lr: float = Field(5e-7, gt=0, le=MAX_LR, description="Learning rate (paper: 3e-7 to 1e-6).")
    beta: float = Field(
        2.0, gt=0, le=MAX_COEF, description="Scale beta of the length-normalised reward."
    )
    gamma: float = Field(
        1.0, ge=0, le=MAX_COEF, description="Target reward margin gamma (paper: gamma/beta 0.5)."
    )
    batch_size: int = Field(8, ge=1, le=MAX_BATCH, description="Pairs per optimizer step.")
    epochs: int = Field(1, ge=1, le=MAX_EPOCHS, description="Passes over each round's pairs.")
    max_grad_norm: float = Field(1.0, gt=0, le=MAX_GRAD_NORM, description="Gradient clipping norm.")


class ORPOParams(MethodParams):
    """Defaults from the paper (lambda 0.1, lr 8e-6) and its code (xfactlab/orpo)."""

    lr: float = Field(8e-6, gt=0, le=MAX_LR, description="Learning rate (paper: 8e-6).")
    lam: float = Field(
        0.1, ge=0, le=MAX_COEF, description="Weight lambda of the odds-ratio term (paper: 0.1)."
    )
    batch_size: int = Field(8, ge=1, le=MAX_BATCH, description="Pairs per optimizer step.")
    epochs: int = Field(1, ge=1, le=MAX_EPOCHS, description="Passes over each round's pairs.")
    max_grad_norm: float = Field(1.0, gt=0, le=MAX_GRAD_NORM, description="Gradient clipping norm.")


class KTOParams(MethodParams):
    """Defaults from the paper (beta 0.1, lambda_D = lambda_U = 1 for balanced data) and the
    authors' code (ContextualAI/HALOs, lr 5e-7)."""

    lr: float = Field(5e-7, gt=0, le=MAX_LR, description="Learning rate (HALOs: 5e-7).")
    beta: float = Field(0.1, gt=0, le=MAX_COEF, description="Scale beta of the value function.")
    desirable_weight: float = Field(
        1.0, ge=0, le=MAX_COEF, description="lambda_D, weight of the desirable examples."
    )
    undesirable_weight: float = Field(
        1.0, ge=0, le=MAX_COEF, description="lambda_U, weight of the undesirable examples."
    )
    batch_size: int = Field(
        8, ge=1, le=MAX_BATCH, description="Preference pairs per step (each gives one of each)."
    )
    epochs: int = Field(1, ge=1, le=MAX_EPOCHS, description="Passes over each round's pairs.")
    max_grad_norm: float = Field(1.0, gt=0, le=MAX_GRAD_NORM, description="Gradient clipping norm.")


class RLOOParams(MethodParams):
    """Defaults from the paper (KL coefficient 0.05; k is the budget's samples_per_prompt) and
    lr 1e-6 as GRPO."""

    lr: float = Field(1e-6, gt=0, le=MAX_LR, description="Learning rate (as GRPO: 1e-6).")
    beta: float = Field(
        0.05, ge=0, le=MAX_COEF, description="KL coefficient in the reward (paper: 0.05)."
    )
    mini_batch_size: int = Field(16, ge=1, le=MAX_BATCH, description="Samples per optimizer step.")
    max_grad_norm: float = Field(1.0, gt=0, le=MAX_GRAD_NORM, description="Gradient clipping norm.")

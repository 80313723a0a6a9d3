"""R-DPO's hyperparameters: torch-free, strict, each with a help text (``harness method-check``
checks that)."""

from pydantic import Field

from methods.base import MethodParams


class RDPOParams(MethodParams):
    """Defaults from the paper: DPO's beta 0.1 and lr 1e-6; alpha 0.01 (the paper sweeps 0.005
    to 0.05)."""

    lr: float = Field(1e-6, gt=0, le=1e3, description="Learning rate (as DPO: 1e-6).")
    beta: float = Field(0.1, gt=0, le=1e3, description="KL strength beta, as DPO's.")
    alpha: float = Field(
        0.01, ge=0, le=1e3, description="Weight of the length difference |y_w| - |y_l| (tokens)."
    )
    batch_size: int = Field(8, ge=1, le=4096, description="Pairs per optimizer step.")
    epochs: int = Field(1, ge=1, le=100, description="Passes over each round's pairs.")
    max_grad_norm: float = Field(1.0, gt=0, le=1e6, description="Gradient clipping norm.")

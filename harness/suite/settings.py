"""How a suite runs, beside what it runs: the Ray pool's resources per run and experiment
tracking (sections ``resources`` and ``tracking`` of ``harness.suite.schema.Suite``)."""

from __future__ import annotations

import importlib.util
from typing import Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from harness.suite.bounds import MAX_CPUS, MAX_RETRIES, MIN_CPUS, MIN_GPUS, Strict


class Resources(Strict):
    cpus_per_run: float = Field(1.0, ge=MIN_CPUS, le=MAX_CPUS)
    gpus_per_run: float = Field(0.0, ge=0, description="0, a fraction of one, or 1.")
    address: str | None = Field(
        None, min_length=1, max_length=1000, description="Ray address; default: a local pool."
    )
    max_retries: int = Field(1, ge=0, le=MAX_RETRIES)

    @field_validator("gpus_per_run")
    @classmethod
    def _at_most_one(cls, gpus: float) -> float:
        if gpus > 1:
            raise PydanticCustomError(
                "gpus",
                "a run uses one device: at most 1 GPU per run (fractions share a card)",
            )
        if 0 < gpus < MIN_GPUS:
            raise PydanticCustomError(
                "gpus", "0, or a share of at least {m} of a GPU", {"m": MIN_GPUS}
            )
        return gpus


# backend -> (the module it imports, the package that installs it)
TRACKING_PACKAGES = {"mlflow": ("mlflow", "mlflow-skinny"), "wandb": ("wandb", "wandb")}


class Tracking(Strict):
    """Experiment tracking (off by default): one tracked run per variant x seed, with its params,
    per-round training statistics and final metrics, tagged with the suite hash."""

    backend: Literal["none", "mlflow", "wandb"] = Field(
        "none", description="none, mlflow (pip install mlflow-skinny) or wandb (pip install wandb)."
    )
    uri: str | None = Field(
        None,
        description="MLflow tracking URI; default: a file store, mlruns/ in the suite's results. "
        "A relative path (mlruns, file:mlruns, sqlite:///mlflow.db) is placed in the suite's "
        "results folder; an http(s) server is probed once before the runs start.",
    )
    experiment: str | None = Field(
        None, description="MLflow experiment or W&B project; default: the suite's name."
    )
    mode: Literal["offline", "online"] = Field(
        "offline",
        description="W&B: offline (files under the results; `wandb sync` uploads them) or online.",
    )

    @field_validator("backend")
    @classmethod
    def _installed(cls, backend: str) -> str:
        module, package = TRACKING_PACKAGES.get(backend, (None, None))
        if module is not None and importlib.util.find_spec(module) is None:
            raise PydanticCustomError(
                "tracking",
                "tracking backend '{backend}' needs '{module}', which is not installed "
                "(pip install {package})",
                {"backend": backend, "module": module, "package": package},
            )
        return backend

"""How a suite runs, beside what it runs: the Ray pool's resources per run and experiment
tracking (sections ``resources`` and ``tracking`` of ``harness.suite.schema.Suite``)."""

from __future__ import annotations

import importlib.util
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from harness.suite.bounds import MAX_CPUS, MAX_RETRIES, MAX_WORKERS, MIN_CPUS, MIN_GPUS, Strict


class Resources(Strict):
    """What one run reserves on the pool. A run of several workers (``workers_per_run``, or
    ``gpus_per_run`` above 1: one worker per GPU) is spread through Ray Train, its workers
    reserved together as one placement group (``harness.run.schedule``); ``cpus_per_run`` and
    ``gpus_per_run`` are the run's totals, split evenly among its workers."""

    cpus_per_run: float = Field(1.0, ge=MIN_CPUS, le=MAX_CPUS)
    gpus_per_run: float = Field(
        0.0,
        ge=0,
        le=MAX_WORKERS,
        description="0, a fraction of one (runs share a card), 1, or a whole number of GPUs "
        "(one worker each).",
    )
    workers_per_run: int = Field(
        1,
        ge=1,
        le=MAX_WORKERS,
        description="Workers one run is spread over (CPU, gloo); with gpus_per_run above 1 it "
        "is that number or left out.",
    )
    address: str | None = Field(
        None, min_length=1, max_length=1000, description="Ray address; default: a local pool."
    )
    max_retries: int = Field(1, ge=0, le=MAX_RETRIES)

    @field_validator("gpus_per_run")
    @classmethod
    def _whole_above_one(cls, gpus: float) -> float:
        if gpus > 1 and gpus != int(gpus):
            raise PydanticCustomError(
                "gpus",
                "above 1 GPU a run takes whole GPUs, one worker each (fractions share one card)",
            )
        if 0 < gpus < MIN_GPUS:
            raise PydanticCustomError(
                "gpus", "0, or a share of at least {m} of a GPU", {"m": MIN_GPUS}
            )
        return gpus

    @model_validator(mode="after")
    def _one_worker_per_gpu(self) -> Resources:
        gpus, workers = self.gpus_per_run, self.workers_per_run
        if gpus > 1 and workers not in (1, int(gpus)):
            raise PydanticCustomError(
                "workers",
                "workers_per_run is {w}, but gpus_per_run {g} means one worker per GPU: "
                "leave workers_per_run out or make it {g}",
                {"w": workers, "g": f"{gpus:g}"},
            )
        if workers > 1 and 0 < gpus < workers:
            raise PydanticCustomError(
                "workers",
                "workers_per_run {w} on GPUs needs a whole GPU per worker: gpus_per_run {w}",
                {"w": workers},
            )
        if self.cpus_per_run / self.workers < MIN_CPUS:
            raise PydanticCustomError(
                "cpus",
                "cpus_per_run {c} split over {w} workers is below {m} CPU a worker",
                {"c": f"{self.cpus_per_run:g}", "w": self.workers, "m": MIN_CPUS},
            )
        return self

    @property
    def workers(self) -> int:
        """The processes one run is spread over (1: one process, no Ray Train)."""
        return max(self.workers_per_run, int(self.gpus_per_run))

    @property
    def cpus_per_worker(self) -> float:
        return self.cpus_per_run / self.workers

    @property
    def gpus_per_worker(self) -> float:
        return self.gpus_per_run / self.workers

    def overridden(self, by: VariantResources | None) -> Resources:
        """These resources with what a variant reserves instead (``by``'s fields that are set);
        ``ValidationError`` when the combination breaks a rule of ``Resources``."""
        if by is None:
            return self
        mine = self.model_dump()
        theirs = {k: v for k, v in by.model_dump().items() if v is not None}
        return Resources.model_validate({**mine, **theirs})


class VariantResources(Strict):
    """What one variant's runs reserve instead of the suite's ``resources`` (each field left out:
    the suite's): a PPO run spread over four GPUs beside one-GPU DPO runs, in one suite and one
    leaderboard. Where the pool is and how often a run is retried stay the suite's."""

    cpus_per_run: float | None = Field(None, ge=MIN_CPUS, le=MAX_CPUS)
    gpus_per_run: float | None = Field(None, ge=0, le=MAX_WORKERS)
    workers_per_run: int | None = Field(None, ge=1, le=MAX_WORKERS)


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

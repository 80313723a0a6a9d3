"""The pieces of ``harness bench`` both sides share: how a run's work is counted
(``ForwardCounter``) and timed (``StepClock``, ``Run``, ``Side``, ``Row``), and ``quiet`` for the
libraries' progress output. Imports ``config`` only.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch

from harness.bench.config import Work

# --------------------------------------------------------------------------- equal work


class ForwardCounter:
    """Counts rows and real tokens (attention-mask ones) of a model's forward calls through a
    forward pre-hook; ``grad_only`` skips calls made without gradients (sampling, old log-probs)."""

    def __init__(self, model: Any, grad_only: bool) -> None:
        self.rows = self.tokens = 0
        self.grad_only = grad_only
        self._handle = model.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.grad_only and not torch.is_grad_enabled():
            return
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            return
        mask = kwargs.get("attention_mask")
        self.rows += int(ids.shape[0])
        self.tokens += int(mask.sum()) if mask is not None else int(ids.numel())

    def close(self) -> None:
        self._handle.remove()


# --------------------------------------------------------------------------- timing


class StepClock:
    """Seconds since ``start`` at the end of each optimizer step."""

    def __init__(self) -> None:
        self.t0, self.ends = time.perf_counter(), list[float]()

    def start(self) -> None:
        self.t0, self.ends = time.perf_counter(), []

    def tick(self, *_: Any) -> None:
        self.ends.append(time.perf_counter() - self.t0)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


@dataclass(frozen=True)
class Run:
    """One timed run of one side."""

    seconds: float
    step_ends: list[float]
    work: Work

    @property
    def rate(self) -> float:
        return self.work.samples / self.seconds

    @property
    def steady_rate(self) -> float | None:
        """Samples/s from the end of the first optimizer step to the end of the last."""
        n = len(self.step_ends)
        span = self.step_ends[-1] - self.step_ends[0] if n > 1 else 0.0
        return self.work.samples * (n - 1) / n / span if span > 0 else None


@dataclass
class Side:
    """One side's timed runs, summarised by medians."""

    runs: list[Run]

    @property
    def rate(self) -> float:
        return statistics.median(r.rate for r in self.runs)

    @property
    def steady_rate(self) -> float | None:
        rates = [r.steady_rate for r in self.runs if r.steady_rate is not None]
        return statistics.median(rates) if rates else None

    def summary(self) -> dict[str, Any]:
        return {
            "median_per_s": self.rate,
            "median_steady_per_s": self.steady_rate,
            "seconds": [r.seconds for r in self.runs],
            "work": asdict(self.runs[0].work),
        }


@dataclass
class Row:
    name: str
    unit: str  # what a sample is: pairs, completions, tokens, samples
    ours: Side | None = None
    trl: Side | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.ours.rate / self.trl.rate if self.ours and self.trl else None

    @property
    def steady_ratio(self) -> float | None:
        a = self.ours.steady_rate if self.ours else None
        b = self.trl.steady_rate if self.trl else None
        return a / b if a and b else None

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "ours": self.ours.summary() if self.ours else None,
            "trl": self.trl.summary() if self.trl else None,
            "ratio": self.ratio,
            "steady_ratio": self.steady_ratio,
            "note": self.note,
        }


@contextmanager
def quiet() -> Iterator[None]:
    """No progress bars, info logs or warnings from transformers, datasets and TRL (restored)."""
    # deferred: datasets and transformers (~1.5 s); the CLI imports this module at start-up
    import datasets
    from transformers.utils import logging as hf_logging

    level, hf_bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    bars = datasets.is_progress_bar_enabled()
    trl_logger = logging.getLogger("trl")
    trl_level, tqdm_env = trl_logger.level, os.environ.get("TQDM_DISABLE")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    trl_logger.setLevel(logging.ERROR)
    os.environ["TQDM_DISABLE"] = "1"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(level)
        if hf_bars:
            hf_logging.enable_progress_bar()
        if bars:
            datasets.enable_progress_bars()
        trl_logger.setLevel(trl_level)
        if tqdm_env is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = tqdm_env

"""One run, start to end: load the models, train the variant, evaluate, return a ``RunResult``.

``execute_run`` is a plain function (the scheduler calls it inside a Ray task; tests call it
directly). It never raises for a failing run: the error and traceback go into the result.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from harness.runs import MetricRow, RunResult, RunSpec
from harness.spec import Suite
from methods import REGISTRY
from methods.base import Budget, Costs, Decoding, DivergenceError, Progress, TrainContext

ProgressFn = Callable[[Progress], None]
PACKAGES = ("torch", "transformers", "tokenizers", "datasets", "lm-eval", "ray", "pandas")


def pick_device(gpus: float) -> torch.device:
    """CUDA when the run was given a GPU and CUDA is there, else CPU (logical GPUs declared on a
    CPU machine). Everything a run computes then stays on that one device; which one it was is
    recorded in the result's provenance, beside the GPUs the run asked for."""
    if gpus > 0 and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


def provenance(spec: RunSpec, device: torch.device) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "suite_hash": spec.suite_hash,
        "git_commit": git_commit(),
        "packages": versions,
        "python": platform.python_version(),
        "host": platform.node(),
        "pid": os.getpid(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(),
        "gpus_requested": spec.suite["resources"]["gpus_per_run"],
        "cuda_available": torch.cuda.is_available(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def train_context(
    suite: Suite, spec: RunSpec, device: torch.device, costs: Costs, progress: ProgressFn
) -> TrainContext:
    from harness.models import load_data, load_policy, load_reward, suite_models
    from methods.common import freeze

    models = suite_models(suite)
    policy, tokenizer = load_policy(models.policy, device)
    if models.reference is None or models.reference == models.policy:
        reference = freeze(policy)
    else:
        reference = freeze(load_policy(models.reference, device)[0])
    data = load_data(suite, tokenizer)
    b = suite.budget
    return TrainContext(
        method=spec.variant,
        policy=policy,
        reference=reference,
        tokenizer=tokenizer,
        reward=load_reward(models.reward, device, costs, prompt_map=data.hh_prompts),
        prompts=data.train_prompts,
        preferences=data.preferences,
        budget=Budget(b.prompts_per_round, b.rounds, b.samples_per_prompt, b.max_new_tokens),
        decoding=Decoding(suite.eval.decoding.temperature, suite.eval.decoding.top_p),
        device=device,
        seed=spec.seed,
        costs=costs,
        progress=progress,
    )


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    torch.manual_seed(seed)


def _train_and_evaluate(
    spec: RunSpec, out_dir: Path, shared: Any, progress: ProgressFn, costs: Costs
) -> tuple[list[MetricRow], torch.device]:
    from harness.evaluate import evaluate_policy

    suite = Suite.model_validate(spec.suite)
    variant = suite.variant(spec.variant)
    method = REGISTRY[spec.method]
    device = pick_device(suite.resources.gpus_per_run)
    seed_everything(spec.seed)
    ctx = train_context(suite, spec, device, costs, progress)
    if method.train is not None:
        method.train(ctx, variant.params)
    metrics = evaluate_policy(ctx, method, variant.params, suite, shared, out_dir)
    return metrics, device


def execute_run(
    spec: RunSpec,
    out_dir: Path,
    shared: Any = None,
    progress: ProgressFn = lambda p: None,
    attempt: int = 1,
) -> RunResult:
    """Train and evaluate one run; a failure becomes a ``failed`` result, never an exception."""
    costs = Costs()
    last: list[Progress] = []

    def track(p: Progress) -> None:
        last[:] = [p]
        progress(p)

    started_at = time.time()
    start = time.perf_counter()
    device = torch.device("cpu")
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        metrics, device = _train_and_evaluate(spec, out_dir, shared, track, costs)
        status, error, tb = "done", None, None
    except Exception as exc:  # a failing run is a result, not a crash of the suite
        metrics, status = [], "failed"
        error, tb = f"{type(exc).__name__}: {exc}", traceback.format_exc()
        if last and not isinstance(exc, DivergenceError):
            error += f" ({spec.variant}, after round {last[0].round}, step {last[0].step})"
    costs.wall_seconds = time.perf_counter() - start
    costs.peak_memory_mb = _peak_memory_mb(device)
    return RunResult(
        run_id=spec.run_id,
        suite=spec.suite["name"],
        variant=spec.variant,
        method=spec.method,
        seed=spec.seed,
        status=status,
        metrics=metrics,
        costs={k: float(v) for k, v in vars(costs).items()},
        provenance={
            **provenance(spec, device),
            "started_at": started_at,
            "finished_at": time.time(),
        },
        error=error,
        traceback=tb,
        attempts=attempt,
    )


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

"""Capability evaluation through lm-eval, the only module that imports ``lm_eval``.

lm-eval runs in the calling process: a run's Ray worker (or the process that builds a world).
A child process per run cost about 5 s of imports on the tiny world, more than lm-eval's work
(0.6 s); a worker imports lm-eval once and keeps it for every run it executes. Its output (logs,
progress bars) is captured, not printed into the suite's console, and shown in the error when
lm-eval fails. Works offline on local task folders (``TaskManager(include_path=...)``) and local
model directories.
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.core.rules import is_regression
from harness.stats.estimates import Z95, Estimate
from harness.suite.bounds import TASK_NAME
from harness.suite.runs import MetricRow


@dataclass(frozen=True)
class TaskScore:
    task: str
    acc: float
    stderr: float
    n: int
    items: list[float] = field(default_factory=list)  # [n] each item's accuracy, by doc id


class CapabilityError(RuntimeError):
    """lm-eval failed; the message holds the error and the tail of its output."""


# an lm-eval task (or group) name, as the suite schema allows it: never an option or a path


def evaluate(
    model_dir: str | Path,
    tasks: list[str],
    include_path: str | Path | None = None,
    limit: int | None = None,
    batch_size: int = 16,
    device: str = "cpu",
    trust_remote_code: bool = False,
) -> dict[str, TaskScore]:
    """Accuracy of the model in ``model_dir`` (or a hub id) on each of ``tasks``, through
    lm-eval's ``hf`` model in this process. Tasks must match ``TASK_NAME`` (``ValueError``
    otherwise); any failure of lm-eval is a ``CapabilityError`` naming the model and tasks.

    lm-eval seeds no global generator here (its seeds are passed as None): a run's own random
    state is left as it was."""
    if not tasks:
        return {}
    bad = [t for t in tasks if not TASK_NAME.fullmatch(t)]
    if bad:
        raise ValueError(f"not lm-eval task names: {', '.join(map(repr, bad))}")
    import lm_eval  # deferred: about 3 s to import, needed only here

    captured = io.StringIO()
    quiet = logging.getLogger("lm_eval")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            out = lm_eval.simple_evaluate(
                model="hf",
                model_args={
                    "pretrained": str(model_dir),
                    "dtype": "float32",
                    "device": device,
                    "trust_remote_code": trust_remote_code,
                },
                tasks=list(tasks),
                task_manager=task_manager(str(include_path) if include_path else None, tasks),
                batch_size=batch_size,
                limit=limit,
                log_samples=True,  # each item's accuracy: base and policy are compared item by item
                random_seed=None,
                numpy_random_seed=None,
                torch_random_seed=None,
            )
            if out is None:
                raise RuntimeError("lm-eval returned no results")
            return {task: _score(out, task) for task in tasks}
    except Exception as exc:
        tail = "\n".join(captured.getvalue().strip().splitlines()[-15:])
        detail = f"{type(exc).__name__}: {exc}" + (f"\n{tail}" if tail else "")
        raise CapabilityError(
            f"lm-eval failed on {model_dir} for tasks {tasks}:\n{detail}"
        ) from exc
    finally:
        quiet.setLevel(level)
        gc.collect()  # the model lm-eval loaded: its memory back before the run goes on
        if device.startswith("cuda"):
            torch.cuda.empty_cache()


def _score(out: dict[str, Any], task: str) -> TaskScore:
    """One task's ``TaskScore`` from ``simple_evaluate``'s output (``log_samples`` on)."""
    res = out["results"][task]
    n = out.get("n-samples", {}).get(task, {}).get("effective", 0)
    stderr = res.get("acc_stderr,none")
    items = sorted(out.get("samples", {}).get(task, []), key=lambda s: s["doc_id"])
    return TaskScore(
        task=task,
        acc=float(res["acc,none"]),
        stderr=float(stderr) if isinstance(stderr, int | float) else float("nan"),
        n=int(n),
        items=[float(s["acc"]) for s in items],
    )


def task_manager(include_path: str | None, tasks: list[str]) -> Any:
    """lm-eval's task index: only ``include_path``'s tasks when they hold every task asked for,
    else lm-eval's built-in tasks as well. Indexing the built-in tasks reads some 26,000 YAML
    files: most of the time a tiny model's whole evaluation takes."""
    from lm_eval.tasks import TaskManager

    if include_path:
        local = TaskManager(include_path=include_path, include_defaults=False)
        if all(task in local.all_tasks for task in tasks):
            return local
        return TaskManager(include_path=include_path)
    return TaskManager()


def capability_delta_se(base: TaskScore, policy: TaskScore) -> float:
    """Standard error of ``acc_p - acc_b``. Paired per item when both scored the same items
    (``items``: base and policy answer the same questions, so their errors are correlated):
    ``std(p_i - b_i) / sqrt(n)``, which is 0 when no answer changed. Otherwise, as if the two
    were independent: ``sqrt(se_p^2 + se_b^2)``."""
    if base.items and len(base.items) == len(policy.items):
        diff = np.asarray(policy.items, dtype=np.float64) - np.asarray(base.items)  # [n]
        return float(diff.std(ddof=1) / math.sqrt(diff.size)) if diff.size > 1 else 0.0
    return math.sqrt(policy.stderr**2 + base.stderr**2)


def capability_rows(
    base: dict[str, TaskScore], policy: dict[str, TaskScore], tolerance: float
) -> list[MetricRow]:
    """Per task of ``policy``: ``capability.<task>`` (acc +- 1.96 stderr),
    ``capability_delta.<task>`` (``acc_p - acc_b`` +- 1.96 ``capability_delta_se``, paired per
    item where the items are known) and ``regression.<task>`` (1.0 or 0.0).

    Regression (``harness.core.rules.is_regression``, the rule of the leaderboard and the gate): the
    drop ``-delta`` is larger than the tolerance and the delta's interval lies below 0.
    """
    rows: list[MetricRow] = []
    for task, p in policy.items():
        if task not in base:
            raise ValueError(f"no base score for task '{task}' (base has {', '.join(base)})")
        b = base[task]
        delta = p.acc - b.acc
        se = capability_delta_se(b, p)
        acc = Estimate(p.acc, p.acc - Z95 * p.stderr, p.acc + Z95 * p.stderr, p.n)
        rows += [
            acc.row(f"capability.{task}"),
            Estimate(delta, delta - Z95 * se, delta + Z95 * se, p.n).row(
                f"capability_delta.{task}"
            ),
            MetricRow(
                f"regression.{task}",
                float(is_regression(0.0, delta, delta + Z95 * se, tolerance)),
                n=p.n,
            ),
        ]
    return rows

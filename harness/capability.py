"""Capability evaluation through lm-eval, the only module that imports ``lm_eval``.

lm-eval always runs in a child process (``python -m harness.capability``): never inside the
scheduler's Ray driver (its vLLM backend starts and stops Ray itself), and its memory is returned
to the system when it ends. Works offline on local task folders (``TaskManager(include_path=...)``)
and local model directories.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TaskScore:
    task: str
    acc: float
    stderr: float
    n: int
    items: list[float] = field(default_factory=list)  # [n] each item's accuracy, by doc id


class CapabilityError(RuntimeError):
    """lm-eval failed; the message holds the tail of its output."""


# an lm-eval task (or group) name, as the suite schema allows it: never an option or a path
TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def evaluate(
    model_dir: str | Path,
    tasks: list[str],
    include_path: str | Path | None = None,
    limit: int | None = None,
    batch_size: int = 16,
    device: str = "cpu",
    timeout: float = 3600,
    trust_remote_code: bool = False,
) -> dict[str, TaskScore]:
    """Accuracy of the model in ``model_dir`` on each of ``tasks`` (lm-eval, in a child process).

    The child's arguments are built from task names that match ``TASK_NAME`` only (``ValueError``
    otherwise), after a ``--``: no task can be read as an option of the child."""
    if not tasks:
        return {}
    bad = [t for t in tasks if not TASK_NAME.fullmatch(t)]
    if bad:
        raise ValueError(f"not lm-eval task names: {', '.join(map(repr, bad))}")
    cmd = [sys.executable, "-m", "harness.capability"]
    cmd += ["--batch-size", str(batch_size), "--device", device]
    if include_path is not None:
        cmd += ["--include-path", str(include_path)]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    if trust_remote_code:
        cmd += ["--trust-remote-code"]
    cmd += ["--", str(model_dir), *tasks]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise CapabilityError(f"lm-eval failed on {model_dir} for tasks {tasks}:\n{tail}")
    payload = json.loads(proc.stdout.strip().splitlines()[-1])
    return {t: TaskScore(**s) for t, s in payload.items()}


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


def _run(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    import lm_eval

    manager = task_manager(args.include_path, args.tasks)
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args={
            "pretrained": args.model_dir,
            "dtype": "float32",
            "device": args.device,
            "trust_remote_code": args.trust_remote_code,
        },
        tasks=args.tasks,
        task_manager=manager,
        batch_size=args.batch_size,
        limit=args.limit,
        log_samples=True,  # each item's accuracy: base and policy are compared item by item
        verbosity="ERROR",
    )
    assert out is not None
    scores = {}
    for task in args.tasks:
        res = out["results"][task]
        n = out.get("n-samples", {}).get(task, {}).get("effective", 0)
        stderr = res.get("acc_stderr,none")
        items = sorted(out.get("samples", {}).get(task, []), key=lambda s: s["doc_id"])
        scores[task] = {
            "task": task,
            "acc": float(res["acc,none"]),
            "stderr": float(stderr) if isinstance(stderr, int | float) else float("nan"),
            "n": int(n),
            "items": [float(s["acc"]) for s in items],
        }
    return scores


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run lm-eval tasks on a local model directory.")
    parser.add_argument("model_dir")
    parser.add_argument("tasks", nargs="+")
    parser.add_argument("--include-path")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--trust-remote-code", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(_run(args)))


if __name__ == "__main__":
    main()

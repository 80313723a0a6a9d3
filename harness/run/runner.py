"""``harness run``: expand a suite, skip what is done, schedule the rest, collect the results.

Exit codes: 0 every run done, 1 some run failed, 2 bad input, 130 interrupted (finished runs kept).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from harness.builder.build import ensure_world
from harness.core.files import folder_lock, remove_temporaries, write_atomic
from harness.load.models import describe_data
from harness.report.leaderboard import summarise_dir, write_leaderboard
from harness.report.results import (
    load_results,
    merged_suite,
    read_run_files,
    read_table,
    write_tables,
)
from harness.report.summary import Summary
from harness.run import schedule, shared
from harness.run.cluster import check_before_start
from harness.run.display import Display, summary_line
from harness.run.tracking import Tracker, open_tracker, tracked
from harness.suite.resolve import Resolved, resolve
from harness.suite.runs import RunResult, RunSpec, expand
from harness.suite.schema import Suite
from methods import REGISTRY


@dataclass
class Outcome:
    out_dir: Path
    results: list[RunResult]
    skipped: list[str]
    paths: dict[str, Path] = field(default_factory=dict)
    summary: Summary | None = None  # the leaderboard's content, once the outputs are written

    @property
    def failed(self) -> list[RunResult]:
        return [r for r in self.results if r.status != "done"]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def finished_runs(out_dir: Path, console: Console) -> dict[str, RunResult]:
    """Results already on disk that finished successfully (a failed run is run again, and so is
    one whose file is unreadable: it is set aside in ``runs/corrupt/`` and named)."""
    warn = lambda message: console.print(f"warning: {message}", markup=False)  # noqa: E731
    loaded = read_run_files(out_dir / "runs", warn) if (out_dir / "runs").is_dir() else []
    return {r.run_id: r for _, r in loaded if r.status == "done"}


def run_suite(
    suite: Suite,
    out_root: Path,
    only: list[str] | None = None,
    fresh: bool = False,
    address: str | None = None,
    console: Console | None = None,
    num_gpus: int | None = None,
) -> Outcome:
    """Run every (variant, seed) of ``suite`` not yet done; write results, tables, leaderboard.

    ``InputError`` before anything starts when a run fits on no node of the pool, the cluster
    cannot be reached, another driver holds the results folder, or the folder holds runs of this
    suite with other settings."""
    console = console or Console()
    out_dir = out_root / suite.name
    resolved = resolve(suite)  # once, here: every task receives this value
    specs = expand(resolved, only)
    for res in suite.run_resources():
        check_before_start(res, address, num_gpus)
    with folder_lock(out_dir):
        return _run_locked(resolved, out_dir, specs, fresh, address, console, num_gpus)


def _run_locked(
    resolved: Resolved,
    out_dir: Path,
    specs: list[RunSpec],
    fresh: bool,
    address: str | None,
    console: Console,
    num_gpus: int | None,
) -> Outcome:
    suite = resolved.suite
    left = remove_temporaries(out_dir)  # by writers killed mid-write: no writer is left here
    if left:
        names = ", ".join(str(p.relative_to(out_dir)) for p in left[:3])
        more = f" and {len(left) - 3} more" if len(left) > 3 else ""
        console.print(
            f"removed {len(left)} temporary file(s) an interrupted run left: {names}{more}",
            markup=False,
        )
    dump = merged_suite(out_dir, suite.model_dump(mode="json"))
    write_atomic(out_dir / "suite.json", json.dumps(dump, indent=1))
    done = {} if fresh else finished_runs(out_dir, console)
    todo = [s for s in specs if s.run_id not in done]
    skipped = [s.label for s in specs if s.run_id in done]
    if skipped:
        console.print(f"resuming: {len(skipped)} run(s) already done, {len(todo)} to run")
    if suite.world is not None:  # built (or installed) once here, before any task
        ensure_world(suite.world, log=lambda line: console.print(line, markup=False))
    for line in describe_data(resolved.data, suite.eval.num_prompts):
        console.print(line, markup=False)
    results = [done[s.run_id] for s in specs if s.run_id in done]
    if todo:
        results += _run_on_pool(resolved, todo, out_dir, fresh, address, console, num_gpus)
    outcome = Outcome(out_dir, _in_suite_order(results, specs), skipped)
    outcome.paths, outcome.summary = write_outputs(out_dir)
    return outcome


def _run_on_pool(
    resolved: Resolved,
    todo: list[RunSpec],
    out_dir: Path,
    fresh: bool,
    address: str | None,
    console: Console,
    num_gpus: int | None,
) -> list[RunResult]:
    """The runs ``todo`` on a Ray pool, after the suite's shared reference evaluation; each result
    saved, shown and tracked as it arrives."""
    suite = resolved.suite
    with schedule.pool(address or suite.resources.address, num_gpus=num_gpus) as p:
        for res in suite.run_resources():
            schedule.check_fits(res)
        console.print(f"pool: {_describe(p.resources)}; {len(todo)} run(s) of {suite.name}")
        ref_path = shared.shared_path(suite, out_dir)
        ref = None if fresh else shared.load_or_none(ref_path)
        if ref is None:
            console.print("shared: reference generations and base capability (once per suite)")
            ref = schedule.compute_shared_remote(resolved)
            ref.save(ref_path)
        trains = {v.name for v in suite.methods if REGISTRY[v.method].trains}
        tracker = open_tracker(suite.tracking, suite.name, out_dir)
        with Display(todo, console, suite.budget.rounds, trains) as display:

            def on_result(result: RunResult) -> None:
                schedule.save_result(out_dir, result)
                display.finished(result, summary_line(result))
                if tracker is not None:
                    track(tracker, suite, result, console)

            try:
                return schedule.run_specs(
                    todo, out_dir, ref, display.update, on_result, board=p.board
                )
            finally:
                if tracker is not None:
                    tracker.close()


def track(tracker: Tracker, suite: Suite, result: RunResult, console: Console) -> None:
    """Log ``result`` to the suite's tracker; a tracker that fails costs a line, not the suite
    (the result is on disk already)."""
    params = suite.variant(result.variant).params.model_dump(mode="json")
    budget = suite.budget.model_dump(mode="json")
    try:
        tracker.log(tracked(result, params, budget, suite.hash()))
    except Exception as exc:  # any backend error: reported, the suite goes on
        console.print(f"tracking: {result.variant}/seed{result.seed} not logged: {exc}")


def _in_suite_order(results: list[RunResult], specs: list[RunSpec]) -> list[RunResult]:
    by_id = {r.run_id: r for r in results}
    return [by_id[s.run_id] for s in specs if s.run_id in by_id]


def _describe(resources: dict[str, float]) -> str:
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    return f"{cpus:g} CPU" + (f", {gpus:g} GPU" if gpus else "")


def write_outputs(out_dir: Path) -> tuple[dict[str, Path], Summary]:
    """Tables and leaderboard from every result of the suite on disk (all runs, not only new);
    the files written, and the leaderboard's summary."""
    every = load_results(out_dir)
    paths = write_tables(out_dir, every)
    long_df, runs_df = read_table(out_dir)
    suite_info = json.loads((out_dir / "suite.json").read_text())
    summary = summarise_dir(out_dir, long_df, runs_df, suite_info)
    md, html = write_leaderboard(out_dir, long_df, runs_df, suite_info, summary)
    return {**paths, "leaderboard.md": md, "leaderboard.html": html}, summary


def main_exit(outcome: Outcome) -> int:
    return outcome.exit_code if sys.stdout else 1

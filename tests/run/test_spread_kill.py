"""A worker of a spread run that dies (SIGKILL) fails that run cleanly: Ray Train stops the other
worker, the run is a failed result, the run beside it finishes, and the run runs again (resume)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from harness.run import schedule
from harness.run.shared import compute_shared
from harness.suite.loader import load_suite
from harness.suite.resolve import resolve
from harness.suite.runs import RunResult, RunSpec, expand
from tests.run.test_spread import SPREAD

pytestmark = [pytest.mark.slow, pytest.mark.spread]  # `pytest -m spread` runs them


def train_workers() -> list[int]:
    """The processes of Ray Train workers (Ray titles them ``ray::RayTrainWorker``), found by
    their command line; this module's pool is the only one that starts any."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if title.startswith(b"ray::RayTrainWorker"):
            found.append(int(entry.name))
    return found


def spread_runs(
    pool: schedule.Pool, todo: list[RunSpec], out: Path, on_update: schedule.Reporter
) -> dict[str, RunResult]:
    shared = compute_shared(todo[0].resolved)
    results = schedule.run_specs(todo, out, shared, on_update, lambda r: None, board=pool.board)
    return {r.variant: r for r in results}


def test_a_killed_worker_fails_its_run_and_the_others_go_on(
    tiny_world: Path, tmp_path: Path
) -> None:
    # of one suite, a run of PPO spread over two workers and one of DPO in one process
    runs = {s.variant: s for s in expand(resolve(load_suite(SPREAD)), ["ppo-2w", "dpo"])}
    spread, alone = runs["ppo-2w"], runs["dpo"]
    killed: list[int] = []
    training = threading.Event()  # the spread run's first worker has started training

    def kill_a_worker() -> None:
        training.wait(timeout=300)
        deadline = time.time() + 60
        while not killed and time.time() < deadline:
            for pid in train_workers():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.2)

    def heard(run_id: str, state: dict[str, object]) -> None:
        if run_id == spread.run_id and state.get("status") == "training":
            training.set()

    with schedule.pool(num_cpus=2) as pool:
        killer = threading.Thread(target=kill_a_worker)
        killer.start()
        results = spread_runs(pool, [spread, alone], tmp_path, heard)  # the spread run first
        training.set()  # the killer's wait ends either way
        killer.join()
        assert killed, "no worker of the spread run was seen"
        assert results["ppo-2w"].status == "failed", results["ppo-2w"].status
        assert "worker" in (results["ppo-2w"].error or "")
        assert results["dpo"].status == "done", results["dpo"].error
        again = spread_runs(pool, [spread], tmp_path, heard)  # resume: the failed run again
    assert again["ppo-2w"].status == "done", again["ppo-2w"].error

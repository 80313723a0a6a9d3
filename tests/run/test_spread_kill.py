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
from harness.suite.runs import expand
from tests.run.test_spread import specs, spread_runs

pytestmark = pytest.mark.slow


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


def test_a_killed_worker_fails_its_run_and_the_others_go_on(
    tiny_world: Path, tmp_path: Path
) -> None:
    (spread,) = specs(2, ["ppo"])
    (alone,) = expand(spread.resolved, ["sft"])  # the same suite: one process for a run of sft
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
        results = spread_runs(pool, [spread, alone], tmp_path, heard)
        training.set()  # the killer's wait ends either way
        killer.join()
        assert killed, "no worker of the spread run was seen"
        assert results["ppo"].status == "failed", results["ppo"].status
        assert "worker" in (results["ppo"].error or "")
        assert results["sft"].status == "done", results["sft"].error
        again = spread_runs(pool, [spread], tmp_path)  # resume: the failed run runs again
    assert again["ppo"].status == "done", again["ppo"].error

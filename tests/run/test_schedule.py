"""`harness run` on a Ray pool: a loopback cluster started with `ray start --head` (2 CPUs and
2 logical GPUs), shared by the tests here that run on it (Ray takes ~13 s to start), and one local
pool of a process of its own (what `harness run` starts without an address). Whether runs share
the pool is checked by tasks that wait for each other, never by timing them: speed is measured by
`harness bench`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from harness.cli.main import app
from harness.suite.runs import RunResult

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "suites" / "tiny.yaml"
# Small and quick: no lm-eval, few eval prompts, a short budget.
QUICK = [
    "eval.lm_eval.tasks=[]",
    "eval.num_prompts=8",
    "eval.samples_per_prompt=1",
    "eval.bootstrap=200",
    "budget.rounds=1",
    "budget.prompts_per_round=8",
    "budget.samples_per_prompt=2",
    "budget.max_new_tokens=24",
]
QUICK_ARGS = [arg for o in QUICK for arg in ("-o", o)]
# two SFT runs one at a time (each takes both CPUs): the suite the resume tests interrupt
SFT_ARGS = [*QUICK_ARGS, "--only", "sft", "-o", "seeds=[0,1]", "-o", "resources.cpus_per_run=2"]
DETERMINISTIC = ["run_id", "variant", "seed", "metric", "value", "ci_low", "ci_high", "n"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop_cluster(temp_dir: Path) -> None:
    """Stop the processes of the cluster started under ``temp_dir`` and their workers, and no
    other: ``ray stop`` would stop every Ray instance of the machine, a user's own included."""
    import psutil

    def started_here(p: psutil.Process) -> bool:
        try:
            return any(str(temp_dir) in arg for arg in p.cmdline())
        except psutil.Error:
            return False

    heads = [p for p in psutil.process_iter() if p.pid != os.getpid() and started_here(p)]
    procs = {p.pid: p for h in heads for p in [h, *_children(h)]}.values()
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    # gcs_server and the autoscaler's monitor outlive a SIGTERM by more than 15 s: what is left
    # of this throwaway cluster after a short grace is killed
    _, alive = psutil.wait_procs(list(procs), timeout=3)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()


def _children(p: Any) -> list[Any]:
    import psutil

    try:
        return list(p.children(recursive=True))
    except psutil.Error:
        return []


@pytest.fixture(scope="module")
def cluster(tiny_world: Path, cache_root: Path) -> Iterator[str]:
    """`ray start --head` on loopback (2 CPUs, 2 logical GPUs); stopped after the module."""
    ray_bin = Path(sys.executable).with_name("ray")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    # a throwaway loopback cluster: no token authentication, on either side
    previous_auth = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    env = {**os.environ, "HARNESS_CACHE": str(cache_root), "RAY_USAGE_STATS_ENABLED": "0"}
    start = [str(ray_bin), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}"]
    start += ["--num-cpus=2", "--num-gpus=2", "--include-dashboard=false", "--disable-usage-stats"]
    temp_dir = Path(tempfile.mkdtemp(prefix=f"rt{port}-", dir="/tmp"))  # short: socket paths
    start += [f"--temp-dir={temp_dir}"]
    # keep up to 4 idle workers alive (Ray's default keeps one per CPU), so that four fractional
    # tasks after a warm-up start at once instead of waiting for new workers to import torch
    start += ['--system-config={"num_workers_soft_limit": 4}']
    subprocess.run(start, check=True, env=env, capture_output=True, timeout=120)
    import ray

    ray.init(
        address=address,
        runtime_env={"env_vars": {"HARNESS_CACHE": str(cache_root)}},
        log_to_driver=False,
    )
    try:
        yield address
    finally:
        ray.shutdown()
        _stop_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        if previous_auth is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = previous_auth


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["run", str(TINY), *args])
    return result.exit_code, result.output


def _long(out: Path, name: str = "tiny") -> pd.DataFrame:
    df = pd.read_parquet(out / name / "table.parquet")
    return df[DETERMINISTIC].sort_values(["run_id", "metric"]).reset_index(drop=True)


def _results(out: Path) -> list[RunResult]:
    return [RunResult.from_json(p.read_text()) for p in sorted((out / "tiny/runs").glob("*.json"))]


def _shared_from(clean: Path, out: Path) -> None:
    """``out`` starts with the shared reference evaluation of the suite in ``clean`` (the same eval
    settings), as a rerun would find it: the runs are what the test is about."""
    shutil.copytree(clean / "tiny/shared", out / "tiny/shared")


CONCURRENT_SCRIPT = """
import json, sys, time
from pathlib import Path
import ray, torch
from ray.util.queue import Queue
from harness.run import schedule
from harness.run.execute import execute_run
from harness.run.shared import compute_shared
from harness.suite.loader import load_suite
from harness.suite.resolve import resolve
from harness.suite.runs import expand

out = Path(sys.argv[1])
resolved = resolve(load_suite(sys.argv[2], json.loads(sys.argv[3])))
specs = expand(resolved, ["raft"])
torch.set_num_threads(1)  # what each pool task gets: one CPU
shared = compute_shared(resolved)


@ray.remote(num_cpus=0)
class Arrivals:
    def __init__(self):
        self.runs = []

    def arrive(self, run_id):
        self.runs.append(run_id)

    def count(self):
        return len(self.runs)


class MeetingBoard(Queue):
    # The pool's progress queue, on which a run's first report ("running") waits until the other
    # run has made its own: it passes only when both runs are alive at once.
    def __init__(self):
        super().__init__(actor_options={"num_cpus": 0})
        self.arrivals = Arrivals.remote()

    def put_nowait(self, item):
        run_id, state = item
        if state.get("status") == "running":
            ray.get(self.arrivals.arrive.remote(run_id))
            deadline = time.time() + 90  # a guard against a hang, not a bound on speed
            while ray.get(self.arrivals.count.remote()) < 2 and time.time() < deadline:
                time.sleep(0.05)
            state = {**state, "met": ray.get(self.arrivals.count.remote()) == 2}
        Queue.put_nowait(self, (run_id, state))


met = {}


def on_update(run_id, state):
    if "met" in state:
        met[run_id] = state["met"]


with schedule.pool(num_cpus=2):  # the local pool `harness run` starts by default
    board = MeetingBoard()
    pooled = schedule.run_specs(specs, out / "pool", shared, on_update, lambda r: None, board=board)
alone = [execute_run(s, out / "alone" / s.run_id, shared) for s in specs]  # no Ray
by_id = {r.run_id: r for r in pooled}
print(json.dumps({
    "met": met,
    "done": [r.status for r in [*alone, *pooled]],
    "same_metrics": [by_id[r.run_id].metrics == r.metrics for r in alone],
}))
"""


@pytest.mark.slow
def test_a_local_pool_runs_two_runs_at_once_with_the_same_results(
    tiny_world: Path, tmp_path: Path
) -> None:
    """Two one-CPU RAFT runs on a local 2-CPU pool (what `harness run` starts by default) are
    alive at once: each run's first progress report waits until the other run has reported too
    (no timing involved; a pool running one task at a time never opens it). Their metrics equal
    those of the same runs one after another in one process, without Ray (one thread each)."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}
    overrides = json.dumps([*QUICK, "seeds=[0,1]"])
    done = subprocess.run(
        [sys.executable, "-c", CONCURRENT_SCRIPT, str(tmp_path), str(TINY), overrides],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(report["met"].values()) == [True, True], report
    assert report["done"] == ["done"] * 4
    assert report["same_metrics"] == [True, True]


@pytest.fixture(scope="module")
def sft_suite(cluster: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The results folder of a clean run of ``SFT_ARGS``, made once: the resume tests compare
    with its table, and the tests about runs start from its shared reference evaluation (the same
    eval settings for every suite here)."""
    out = tmp_path_factory.mktemp("sft-clean")
    code, output = _run([*SFT_ARGS, "--out", str(out)])
    assert code == 0, output
    return out


@pytest.mark.slow
def test_resume_runs_only_what_is_missing(sft_suite: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(sft_suite, out)
    (first, *_rest) = sorted((out / "tiny/runs").glob("*.json"))
    first.unlink()
    code, output = _run([*SFT_ARGS, "--out", str(out)])
    assert code == 0, output
    assert "1 run(s) already done, 1 to run" in output
    pd.testing.assert_frame_equal(_long(sft_suite), _long(out))


@pytest.mark.slow
def test_kill_9_mid_suite_then_resume(cluster: str, sft_suite: Path, tmp_path: Path) -> None:
    """A `harness run` process killed with SIGKILL after its first result, before its second:
    the rerun does only the second and its table equals that of a clean run."""
    out = tmp_path / "out"
    _shared_from(sft_suite, out)
    cmd = [str(Path(sys.executable).with_name("harness")), "run", str(TINY), "--out", str(out)]
    cmd += [*SFT_ARGS, "--address", cluster]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ)
    deadline = time.time() + 240
    while time.time() < deadline and not list((out / "tiny/runs").glob("*.json")):
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(list((out / "tiny/runs").glob("*.json"))) == 1
    assert not list(out.rglob("*.tmp"))  # nothing half-written
    code, output = _run([*SFT_ARGS, "--out", str(out)])  # the lock died with the driver
    assert code == 0, output
    assert "1 run(s) already done, 1 to run" in output
    pd.testing.assert_frame_equal(_long(out), _long(sft_suite))


@pytest.mark.slow
def test_a_failing_variant_is_isolated(sft_suite: Path, tmp_path: Path) -> None:
    _shared_from(sft_suite, tmp_path)
    args = [*QUICK_ARGS, "--only", "sft", "--only", "raft"]
    args += ["-o", "seeds=[0]", "-o", "methods.raft.params.lr=1e12", "--out", str(tmp_path)]
    code, output = _run(args)
    assert code == 1, output
    by_variant = {r.variant: r for r in _results(tmp_path)}
    assert by_variant["sft"].status == "done"
    failed = by_variant["raft"]
    assert failed.status == "failed"
    assert failed.error and "diverged" in failed.error
    assert "raft" in failed.error and "round" in failed.error  # names the method, round and step
    assert failed.traceback and "Traceback" in failed.traceback
    assert "FAILED   raft/seed0" in output
    board = (tmp_path / "tiny" / "leaderboard.md").read_text()
    assert "raft" in board and "diverged" in board  # failed runs are listed, not dropped


@pytest.mark.slow
def test_fractional_gpus_pack_four_runs_on_two_logical_gpus(cluster: str) -> None:
    """Four tasks of half a GPU and half a CPU run at once on 2 logical GPUs and 2 CPUs: each
    waits at a barrier that opens only when all four have arrived (no timing involved)."""
    import ray

    from harness.run import schedule

    @ray.remote(num_cpus=0)
    class Barrier:
        def __init__(self) -> None:
            self.arrived = 0

        def arrive(self) -> None:
            self.arrived += 1

        def count(self) -> int:
            return self.arrived

    def meet(barrier: Any) -> bool:
        ray.get(barrier.arrive.remote())
        deadline = time.time() + 90
        while time.time() < deadline:
            if ray.get(barrier.count.remote()) == 4:
                return True
            time.sleep(0.05)
        return False  # some task could not start while this one held its share

    half = {"CPU": 0.5, "GPU": 0.5}
    assert schedule.room(half, [half] * 3, ray.cluster_resources())  # the fourth fits
    assert not schedule.room(half, [half] * 4, ray.cluster_resources())  # a fifth waits
    barrier = Barrier.remote()  # type: ignore[attr-defined]
    task = schedule._remote(meet, cpus=0.5, gpus=0.5, max_retries=0)
    assert ray.get([task.remote(barrier) for _ in range(4)], timeout=150) == [True] * 4


@pytest.mark.slow
def test_gpu_runs_each_get_a_fresh_worker(sft_suite: Path, tmp_path: Path) -> None:
    """Three one-GPU runs through two slots: a GPU run's worker process is never reused (it would
    keep that run's CUDA memory and device), so three runs show three processes where reused
    workers would show two."""
    args = [*QUICK_ARGS, "--only", "sft", "-o", "seeds=[0,1,2]"]
    args += ["-o", "resources.gpus_per_run=1", "-o", "resources.cpus_per_run=1"]
    _shared_from(sft_suite, tmp_path)
    code, output = _run([*args, "--out", str(tmp_path)])
    assert code == 0, output
    results = _results(tmp_path)
    assert len(results) == 3
    assert len({r.provenance["pid"] for r in results}) == 3
    devices = {r.provenance["cuda_visible_devices"] for r in results}
    assert devices == {"0", "1"}  # both logical GPUs used
    assert all(r.provenance["device"] == "cpu" for r in results)  # no CUDA here: CPU fallback


def test_cli_errors_exit_2(tmp_path: Path) -> None:
    code, output = _run(["--only", "nope", "--out", str(tmp_path)])
    assert code == 2 and "unknown variant" in output
    code, output = _run(["-o", "budget.rounds=0", "--out", str(tmp_path)])
    assert code == 2 and "budget.rounds" in output
    assert not (tmp_path / "tiny").exists()  # bad input writes nothing


@pytest.mark.slow
def test_results_are_written_per_run(sft_suite: Path, tmp_path: Path) -> None:
    _shared_from(sft_suite, tmp_path)
    args = [*QUICK_ARGS, "--only", "sft", "-o", "seeds=[0]"]
    code, output = _run([*args, "--out", str(tmp_path)])
    assert code == 0, output
    suite = json.loads((tmp_path / "tiny" / "suite.json").read_text())
    assert suite["name"] == "tiny"
    for name in ("table.parquet", "table.csv", "leaderboard.md", "leaderboard.html"):
        assert (tmp_path / "tiny" / name).exists(), name


@pytest.mark.slow
def test_tracked_run_logs_one_mlflow_run_per_variant_and_seed(
    cluster: str, sft_suite: Path, tmp_path: Path
) -> None:
    """`tracking: {backend: mlflow}`: every finished run of `harness run` in the suite's local
    MLflow store, read back with MLflow's own client, with per-round training statistics."""
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    from harness.run.tracking import default_mlflow_uri

    small = ["budget.prompts_per_round=4", "seeds=[0,1]"]
    args = [*QUICK_ARGS, *(a for o in small for a in ("-o", o)), "--only", "raft"]
    args += ["-o", "tracking.backend=mlflow"]
    _shared_from(sft_suite, tmp_path)
    code, output = _run([*args, "--out", str(tmp_path), "--address", cluster])
    assert code == 0, output
    client = MlflowClient(default_mlflow_uri(tmp_path / "tiny"))
    experiment = client.get_experiment_by_name("tiny")
    assert experiment is not None
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == ["raft/seed0", "raft/seed1"]
    for run in runs.values():
        assert "winrate.gold" in run.data.metrics and "params.lr" in run.data.params
        assert run.data.tags["suite_hash"] == _results(tmp_path)[0].provenance["suite_hash"]
        (loss,) = client.get_metric_history(run.info.run_id, "train/loss")  # one round
        assert loss.step == 0


def test_a_local_pool_is_new_whatever_ray_start_left(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an address the pool is this process's own ("local"): Ray would otherwise join the
    cluster named in its temp dir by an earlier `ray start`, or fail when that one is dead."""
    import ray

    from harness.run import schedule

    calls: list[dict[str, Any]] = []
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    monkeypatch.setattr(schedule, "progress_board", lambda: None)
    with schedule.pool(num_cpus=2) as p:
        assert p.started_here
    assert [c["address"] for c in calls] == ["local"]
    assert calls[0]["num_cpus"] == 2


def test_runs_of_other_sizes_start_when_the_pool_has_room_for_them() -> None:
    """A variant's own resources (a run of two workers) beside one-CPU runs on a 2-CPU pool: the
    spread run waits until both CPUs are free, then holds them both; a GPU run needs a GPU."""
    from harness.run import schedule
    from harness.suite.settings import Resources

    pool = {"CPU": 2.0}
    one = schedule.reservation(Resources(cpus_per_run=1))
    two = schedule.reservation(Resources(cpus_per_run=2, workers_per_run=2))
    assert two == {"CPU": 2.0, "GPU": 0.0}
    assert schedule.room(one, [one], pool) and not schedule.room(one, [one, one], pool)
    assert not schedule.room(two, [one], pool) and schedule.room(two, [], pool)
    assert not schedule.room(one, [two], pool)
    assert not schedule.room(schedule.reservation(Resources(gpus_per_run=1)), [], pool)

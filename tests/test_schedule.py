"""`harness run` on a Ray pool: a loopback cluster started with `ray start --head`, shared by
every test here (Ray takes ~13 s to start), with 2 CPUs and 2 logical GPUs."""

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

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "suites" / "tiny.yaml"
# Small and quick: no lm-eval, few eval prompts, a short budget.
QUICK = [
    "eval.lm_eval.tasks=[]",
    "eval.num_prompts=32",
    "eval.samples_per_prompt=1",
    "eval.bootstrap=200",
    "budget.rounds=1",
    "budget.prompts_per_round=8",
    "budget.samples_per_prompt=2",
    "budget.max_new_tokens=24",
]
QUICK_ARGS = [arg for o in QUICK for arg in ("-o", o)]
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
    _, alive = psutil.wait_procs(list(procs), timeout=15)
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


PARALLEL_SCRIPT = """
import json, sys, time
from pathlib import Path
import torch
from harness.run import schedule
from harness.run.execute import execute_run
from harness.suite.runs import expand
from harness.run.shared import compute_shared
from harness.suite.loader import load_suite

out = Path(sys.argv[1])
# four times the default rounds, so that each run does real work next to the pool's fixed costs;
# four runs of one method, so that two workers share the work evenly; no lm-eval
overrides = ["eval.lm_eval.tasks=[]", "eval.num_prompts=64", "eval.samples_per_prompt=1"]
overrides += ["eval.bootstrap=200", "seeds=[0,1,2,3]"]
suite = load_suite(sys.argv[2], [*overrides, "budget.rounds=16"])
specs = expand(suite, ["raft"])
warm = expand(load_suite(sys.argv[2], [*overrides, "budget.rounds=1", "seeds=[0,1]"]), ["raft"])
torch.set_num_threads(1)  # what each pool task gets: one CPU
shared = compute_shared(suite.model_dump(mode="json"))
quiet = (lambda *a: None, lambda r: None)
times = {"alone": [], "pool": []}
# this VM's speed wanders by up to 40% over minutes: each time is the best of the tries made, a
# next try only while the best times so far miss the bound and the time spent leaves room for it
began = time.perf_counter()
for attempt in range(4):
    t = time.perf_counter()  # one after another, with no Ray running
    alone = [execute_run(s, out / f"seq{attempt}" / s.run_id, shared) for s in specs]
    times["alone"].append(time.perf_counter() - t)
    with schedule.pool(num_cpus=2) as p:
        # both workers start and import everything before the timing (one-round runs)
        schedule.run_specs(warm, out / f"warm{attempt}", shared, 1, 0, 0, *quiet, board=p.board)
        t = time.perf_counter()
        pooled = schedule.run_specs(
            specs, out / f"pool{attempt}", shared, 1, 0, 0, *quiet, board=p.board
        )
        times["pool"].append(time.perf_counter() - t)
    met = min(times["pool"]) <= 0.7 * min(times["alone"])
    spent = time.perf_counter() - began  # a next try would take about spent / tries
    if met or spent * (attempt + 2) / (attempt + 1) > 400:
        break
by_id = {r.run_id: r for r in pooled}
print(json.dumps({
    **times,
    "done": all(r.status == "done" for r in [*alone, *pooled]),
    "same_metrics": all(by_id[r.run_id].metrics == r.metrics for r in alone),
    "each_alone": [round(r.costs["wall_seconds"], 1) for r in alone],
    "each_pool": [round(r.costs["wall_seconds"], 1) for r in pooled],
}))
"""


def test_parallel_suite_is_faster_and_repeatable(tiny_world: Path, tmp_path: Path) -> None:
    """4 runs on a local 2-CPU pool (what `harness run` starts by default) take at most 0.7x the
    time of the same runs one after another (one thread each, no Ray), with identical metrics.

    On a quiet 2-vCPU AMD EPYC, four 16-round RAFT runs took 42.8 s on the pool against 73.2 s
    one after another (0.58x): each run is ~17% slower beside another (the two vCPUs share cache
    and memory bandwidth), which is what keeps it above 0.5x. The bound leaves room for this VM's
    speed, which wanders by up to 40% over minutes, and still fails a pool that runs one task at a
    time (1.0x) or one slowed by its own overheads; a next try is made only while the bound is
    missed and the time spent leaves room for it.
    """
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [sys.executable, "-c", PARALLEL_SCRIPT, str(tmp_path), str(TINY)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    pool, alone = min(report["pool"]), min(report["alone"])
    print(f"4 runs: {pool:.1f} s on the pool, {alone:.1f} s one after another: {pool / alone:.2f}x")
    print("tries, pool:", report["pool"], "one after another:", report["alone"])
    print("each alone:", report["each_alone"], "each on the pool:", report["each_pool"])
    assert report["done"] and report["same_metrics"]
    assert pool <= 0.7 * alone


def test_resume_runs_only_what_is_missing(cluster: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [*QUICK_ARGS, "--only", "sft", "-o", "seeds=[0,1,2]"]
    code, _ = _run([*args, "--out", str(out)])
    assert code == 0
    (first, *_rest) = sorted((out / "tiny/runs").glob("*.json"))
    first.unlink()
    before = _long(out)
    code, output = _run([*args, "--out", str(out)])
    assert code == 0, output
    assert "2 run(s) already done, 1 to run" in output
    pd.testing.assert_frame_equal(before, _long(out))


def test_kill_9_mid_suite_then_resume(cluster: str, tmp_path: Path) -> None:
    """The driver killed with SIGKILL after the first result: the rerun does only the rest and
    its table equals that of a clean run."""
    out = tmp_path / "out"
    cmd = [str(Path(sys.executable).with_name("harness")), "run", str(TINY), "--out", str(out)]
    cmd += [*QUICK_ARGS, "--only", "sft", "-o", "seeds=[0,1,2]"]
    cmd += ["--address", cluster]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ)
    deadline = time.time() + 240
    while time.time() < deadline and not list((out / "tiny/runs").glob("*.json")):
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = list((out / "tiny/runs").glob("*.json"))
    assert 1 <= len(kept) < 3
    assert not list(out.rglob("*.tmp"))  # nothing half-written
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{len(kept)} run(s) already done, {3 - len(kept)} to run" in resumed.stdout
    clean = tmp_path / "clean"
    shutil.copytree(out / "tiny/shared", clean / "tiny/shared")
    code, output = _run(["--out", str(clean), *cmd[5:-2]])
    assert code == 0, output
    pd.testing.assert_frame_equal(_long(out), _long(clean))


def test_a_failing_variant_is_isolated(cluster: str, tmp_path: Path) -> None:
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

    assert schedule.capacity(0.5, 0.5) == 4
    barrier = Barrier.remote()  # type: ignore[attr-defined]
    task = schedule._remote(meet, cpus=0.5, gpus=0.5, max_retries=0)
    assert ray.get([task.remote(barrier) for _ in range(4)], timeout=150) == [True] * 4


def test_fractional_gpu_runs_each_get_a_fresh_worker(cluster: str, tmp_path: Path) -> None:
    """Five half-GPU runs through four slots: a GPU run's worker process is never reused (it would
    keep that run's CUDA memory and device), so five runs show five processes."""
    args = [*QUICK_ARGS, "--only", "sft", "-o", "seeds=[0,1,2,3,4]"]
    args += ["-o", "resources.gpus_per_run=0.5", "-o", "resources.cpus_per_run=0.5"]
    code, output = _run([*args, "--out", str(tmp_path)])
    assert code == 0, output
    results = _results(tmp_path)
    assert len(results) == 5
    assert len({r.provenance["pid"] for r in results}) == 5
    devices = {r.provenance["cuda_visible_devices"] for r in results}
    assert devices == {"0", "1"}  # both logical GPUs used
    assert all(r.provenance["device"] == "cpu" for r in results)  # no CUDA here: CPU fallback


def test_cli_errors_exit_2(tmp_path: Path) -> None:
    code, output = _run(["--only", "nope", "--out", str(tmp_path)])
    assert code == 2 and "unknown variant" in output
    code, output = _run(["-o", "budget.rounds=0", "--out", str(tmp_path)])
    assert code == 2 and "budget.rounds" in output
    assert not (tmp_path / "tiny").exists()  # bad input writes nothing


def test_results_are_written_per_run(cluster: str, tmp_path: Path) -> None:
    args = [*QUICK_ARGS, "--only", "sft", "-o", "seeds=[0]"]
    code, output = _run([*args, "--out", str(tmp_path)])
    assert code == 0, output
    suite = json.loads((tmp_path / "tiny" / "suite.json").read_text())
    assert suite["name"] == "tiny"
    for name in ("table.parquet", "table.csv", "leaderboard.md", "leaderboard.html"):
        assert (tmp_path / "tiny" / name).exists(), name


def test_tracked_run_logs_one_mlflow_run_per_variant_and_seed(cluster: str, tmp_path: Path) -> None:
    """`tracking: {backend: mlflow}`: every finished run of `harness run` in the suite's local
    MLflow store, read back with MLflow's own client, with per-round training statistics."""
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    from harness.run.tracking import default_mlflow_uri

    small = ["eval.num_prompts=8", "budget.prompts_per_round=4", "seeds=[0,1]"]
    args = [*QUICK_ARGS, *(a for o in small for a in ("-o", o)), "--only", "raft"]
    args += ["-o", "tracking.backend=mlflow"]
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

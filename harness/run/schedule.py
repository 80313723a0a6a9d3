"""Scheduling a suite's runs as Ray tasks on a shared CPU/GPU pool: the only module importing Ray.

One suite is many runs (variant x seed); each is a Ray task reserving its ``cpus_per_run`` and
(fractional) ``gpus_per_run`` (the suite's ``resources``, or its variant's own). A run of several
workers (``Resources.workers``) is a Ray Train ``TorchTrainer`` instead: its workers (each an even
share of the run's CPUs and GPUs) reserved together as one placement group (PACK), so a run never
waits half-placed while single-device runs still pack beside it; its process group (gloo on CPU,
NCCL on GPUs) is Ray Train's.

Finished runs are skipped (resume); each result is written atomically the moment it arrives, so a
killed driver loses only the runs in flight. A worker that dies is retried by Ray up to
``max_retries``; a run that raises is a failed result, not a crash.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
import torch
from ray.util.queue import Queue

from harness.core.errors import InputError
from harness.core.files import write_atomic, write_atomic_with
from harness.run.cluster import check_reachable, unfit
from harness.run.execute import execute_run
from harness.run.shared import compute_shared
from harness.suite.resolve import Resolved
from harness.suite.runs import RunResult, RunSpec
from harness.suite.settings import Resources
from methods.base import Progress

PASS_ENV = ("HARNESS_CACHE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HOME", "XDG_CACHE_HOME")
POLL_SECONDS = 0.5
RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


def _task_setup(num_cpus: float) -> None:
    torch.set_num_threads(max(1, int(num_cpus)))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _run_task(spec: RunSpec, out_dir: str, shared: Any, board: Any, cpus: float) -> RunResult:
    """Inside a Ray task: threads = the task's CPUs; device = CUDA when a GPU was given."""
    _task_setup(cpus)
    board.put_nowait((spec.run_id, {"status": "running", "started": time.time()}))
    progress = _progress_reporter(spec.run_id, board)

    def phase(name: str) -> None:
        board.put_nowait((spec.run_id, {"status": name}))

    artifacts = Path(out_dir) / "artifacts" / spec.run_id
    return execute_run(spec, artifacts, shared, progress, phase=phase)


def _worker_loop(config: dict[str, Any]) -> None:
    """Inside each Ray Train worker of a spread run: the run's share of this worker
    (``execute_run`` over the process group Ray Train made). The first worker reports progress
    and writes the run's result; a failure on any worker raises here, so that Ray Train stops
    them all (a worker left waiting in a collective would wait forever)."""
    spec: RunSpec = config["spec"]
    _task_setup(config["cpus"])
    rank = ray.train.get_context().get_world_rank()
    device = ray.train.torch.get_device()
    board = config["board"]
    progress: Callable[[Progress], None] = lambda p: None  # noqa: E731
    phase: Callable[[str], None] = lambda name: None  # noqa: E731
    if rank == 0:
        board.put_nowait((spec.run_id, {"status": "running", "started": time.time()}))
        progress = _progress_reporter(spec.run_id, board)

        def phase(name: str) -> None:
            board.put_nowait((spec.run_id, {"status": name}))

    artifacts = Path(config["out_dir"]) / "artifacts" / spec.run_id
    result = execute_run(spec, artifacts, config["shared"], progress, phase=phase, device=device)
    if rank == 0:
        # the result as the worker holds it (pickled: this process wrote it, its driver reads it)
        write_atomic_with(
            artifacts / SPREAD_RESULT, lambda tmp: tmp.write_bytes(pickle.dumps(result))
        )
    if result.status != "done":
        raise RuntimeError(result.error or "the run failed")


SPREAD_RESULT = "result.pickle"  # a spread run's result, written by its first worker


def _spread_task(spec: RunSpec, out_dir: str, shared: Any, board: Any) -> RunResult:
    """A run of several workers, launched and awaited from a Ray task of no resources of its
    own: Ray Train's workers reserve the run's CPUs and GPUs, as one placement group."""
    from ray.train import FailureConfig, RunConfig
    from ray.train.torch import TorchTrainer

    res = spec.resources
    artifacts = Path(out_dir) / "artifacts" / spec.run_id
    (artifacts / SPREAD_RESULT).unlink(missing_ok=True)
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={
            "spec": spec,
            "out_dir": out_dir,
            "shared": shared,
            "board": board,
            "cpus": res.cpus_per_worker,
        },
        scaling_config=scaling(res),
        run_config=RunConfig(
            name=spec.run_id,
            storage_path=str((artifacts / "train").resolve()),
            failure_config=FailureConfig(max_failures=0),  # a failed run is a result
        ),
    )
    error: BaseException | None = None
    try:
        trainer.fit()
    except Exception as exc:  # a worker raised or died: Ray Train stopped the others
        error = exc
    written = artifacts / SPREAD_RESULT
    if written.exists():  # the first worker's own account, a failure included
        result: RunResult = pickle.loads(written.read_bytes())
        return result
    why = _first_line(error) if error is not None else "no result was written"
    return RunResult.of(spec, "failed", error=f"a worker of the run failed: {why}")


def scaling(res: Resources) -> Any:
    """Ray Train's ``ScalingConfig`` of a run of ``res.workers`` workers: each an even share of
    the run's CPUs and GPUs (one GPU each on a GPU pool), reserved as one placement group that
    packs them on as few nodes as it can (PACK)."""
    from ray.train import ScalingConfig

    return ScalingConfig(
        num_workers=res.workers,
        use_gpu=res.gpus_per_worker > 0,
        resources_per_worker=worker_bundle(res),
        placement_strategy="PACK",
    )


def worker_bundle(res: Resources) -> dict[str, float]:
    """What one worker of a spread run reserves."""
    bundle = {"CPU": res.cpus_per_worker}
    if res.gpus_per_worker > 0:
        bundle["GPU"] = res.gpus_per_worker
    return bundle


def on_workers(
    fn: Callable[[dict[str, Any]], Any], config: dict[str, Any], res: Resources, storage: Path
) -> list[Any]:
    """``fn(config)`` on each of the ``res.workers`` workers of a Ray Train ``TorchTrainer`` (its
    process group made, placed as ``scaling(res)``); what each returned, by rank. Ray is started
    for the call when this process holds none (a local pool of this machine)."""
    from ray.train import FailureConfig, RunConfig
    from ray.train.torch import TorchTrainer

    def loop(cfg: dict[str, Any]) -> None:
        rank = ray.train.get_context().get_world_rank()
        out = fn({**cfg, "device": ray.train.torch.get_device()})
        write_atomic_with(
            storage / f"rank{rank}.pickle", lambda t: t.write_bytes(pickle.dumps(out))
        )

    started = not ray.is_initialized()
    if started:
        ray.init(address="local", include_dashboard=False, log_to_driver=False)
    try:
        TorchTrainer(
            loop,
            train_loop_config=config,
            scaling_config=scaling(res),
            run_config=RunConfig(
                storage_path=str((storage / "train").resolve()),
                failure_config=FailureConfig(max_failures=0),
            ),
        ).fit()
    finally:
        if started:
            ray.shutdown()
    return [pickle.loads((storage / f"rank{r}.pickle").read_bytes()) for r in range(res.workers)]


def _progress_reporter(run_id: str, board: Any) -> Callable[[Progress], None]:
    last = [0.0]

    def progress(p: Progress) -> None:
        now = time.time()
        if now - last[0] >= 0.5:  # at most two updates a second per run
            last[0] = now
            update = {"round": p.round, "step": p.step, "reward": p.mean_reward}
            board.put_nowait((run_id, update))

    return progress


def _shared_task(resolved: Resolved, cpus: float) -> Any:
    _task_setup(cpus)
    return compute_shared(resolved)


@dataclass
class Pool:
    """Ray attached for the duration of a suite, with the queue its runs report progress on."""

    address: str | None
    board: Queue
    started_here: bool = False
    resources: dict[str, float] = field(default_factory=dict)


@contextmanager
def pool(
    address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None
) -> Iterator[Pool]:
    """Attach to ``address`` (or ``RAY_ADDRESS``), reuse a Ray already initialised in this process,
    or start a new local pool sized to the machine (``num_gpus`` logical GPUs may be declared on a
    CPU machine: that is how the GPU-pool logic is tested)."""
    env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    started = False
    if not ray.is_initialized():
        addr = address or os.environ.get("RAY_ADDRESS")
        kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}, "include_dashboard": False}
        kwargs.update(log_to_driver=False, logging_level=logging.WARNING)
        if addr:
            check_reachable(addr)
            ray.init(address=addr, **kwargs)
        else:
            # "local": a new pool of this process, never a cluster that `ray start` once left
            # in Ray's temp dir (a dead one there would fail the run, a live one be shared)
            with _quiet_token_auth_notice():
                ray.init(
                    address="local",
                    num_cpus=num_cpus or os.cpu_count(),
                    num_gpus=num_gpus,
                    **kwargs,
                )
        started = True
    board: Queue | None = None
    try:
        board = progress_board()
        yield Pool(address, board, started, dict(ray.cluster_resources()))
    finally:
        if started:
            ray.shutdown()
        elif board is not None:
            ray.kill(board.actor)  # type: ignore[arg-type]  # leave nothing on a visited cluster


@contextmanager
def _quiet_token_auth_notice() -> Iterator[None]:
    """Without the notice Ray logs when it turns token authentication on for a new local pool by
    itself (on every pool, it says nothing the user must act on); the protection stays, and any
    other message of that logger (e.g. that authentication is off) still shows."""

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled")

    auth_logger = logging.getLogger(RAY_AUTH_LOGGER)
    auth_logger.addFilter(keep)
    try:
        yield
    finally:
        auth_logger.removeFilter(keep)


def check_fits(res: Resources) -> None:
    """``InputError`` when the live nodes of the attached pool cannot hold one run of ``res``
    (all its workers)."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    problem = unfit(res.cpus_per_run, res.gpus_per_run, nodes, res.workers)
    if problem:
        raise InputError(problem)


def progress_board() -> Queue:
    """Progress travels through a queue actor (Ray's own: nothing of ours to import). It is made
    once per pool and waited for here: its worker process takes ~0.8 s to start, which every run's
    first report would otherwise wait on. Its own runtime env gives it a process of its own, so it
    never takes an idle worker that has already imported torch for the runs."""
    own_process = {"env_vars": {"HARNESS_PROCESS": "progress-board"}}
    board = Queue(actor_options={"num_cpus": 0, "runtime_env": own_process})
    board.size()  # a round trip: the actor is up
    return board


Reporter = Callable[[str, dict[str, Any]], None]


def compute_shared_remote(resolved: Resolved) -> Any:
    """The suite's shared work as one task of the suite's resources (one worker's share, when
    its runs are spread); an error inside it is raised here as itself (not Ray's wrapper with
    the remote traceback)."""
    res = resolved.suite.resources
    cpus, gpus = res.cpus_per_worker, res.gpus_per_worker
    task = _remote(_shared_task, cpus, gpus, max_retries=1)
    try:
        return ray.get(task.remote(resolved, cpus))
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, Exception) and not isinstance(cause, ray.exceptions.RayError):
            raise cause from None
        raise RuntimeError(f"the shared task failed: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _remote(fn: Callable[..., Any], cpus: float, gpus: float, max_retries: int) -> Any:
    """``fn`` as a Ray task of ``cpus`` CPUs and ``gpus`` GPUs. A task given a GPU gets a fresh
    worker process (Ray's own default for GPU tasks, which ``.options`` would bypass): a reused one
    would keep the last run's CUDA memory and the device its CUDA context was first made on."""
    options: dict[str, Any] = {"num_cpus": cpus, "num_gpus": gpus, "max_retries": max_retries}
    if gpus > 0:
        options["max_calls"] = 1
    return ray.remote(**options)(fn)


def run_specs(
    specs: list[RunSpec],
    out_dir: Path,
    shared: Any,
    on_update: Reporter,
    on_result: Callable[[RunResult], None],
    *,
    board: Queue,
) -> list[RunResult]:
    """Run every spec as a Ray task, write each result as it arrives, return them all. Each run
    reserves its own resources (``RunSpec.resources``: the suite's, or its variant's own); a run
    of several workers is a Ray Train run (``_spread_task``).

    Only as many runs as the pool holds at once are in flight, started in suite order: a backlog
    of queued tasks makes Ray start idle worker processes whose imports steal CPU from the running
    ones (measured here: each run 1.7x slower). Progress goes through ``board``, the pool's queue.
    Ctrl-C cancels what is in flight and re-raises; finished results stay.
    """
    _drain(board, lambda run_id, state: None)  # what an earlier call left behind
    shared_ref = ray.put(shared)
    waiting = list(reversed(specs))
    total = ray.cluster_resources()
    needs = {spec.run_id: spec.resources for spec in specs}  # each decided once
    launch = _Launcher(out_dir, shared_ref, board)
    pending: dict[Any, RunSpec] = {}
    results: list[RunResult] = []
    try:
        while waiting or pending:
            held = [reservation(needs[s.run_id]) for s in pending.values()]
            while waiting and (
                not held or room(reservation(needs[waiting[-1].run_id]), held, total)
            ):
                spec = waiting.pop()
                pending[launch(spec, needs[spec.run_id])] = spec
                held.append(reservation(needs[spec.run_id]))
            done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
            for ref in done:
                spec = pending.pop(ref)
                result = _collect(ref, spec, needs[spec.run_id].max_retries)
                results.append(result)
                on_result(result)
            _drain(board, on_update)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return results


class _Launcher:
    """Starts a run on the pool: a task of its CPUs and GPUs, or, spread over several workers, a
    task of no resources of its own that runs Ray Train (its workers hold them). One Ray remote
    function per reservation, made the first time it is needed."""

    def __init__(self, out_dir: Path, shared_ref: Any, board: Queue) -> None:
        self.args = (str(out_dir), shared_ref, board)
        self.remotes: dict[tuple[float, float, int], Any] = {}
        self.spread = _remote(_spread_task, 0, 0, max_retries=0)

    def __call__(self, spec: RunSpec, res: Resources) -> Any:
        if res.workers > 1:
            return self.spread.remote(spec, *self.args)
        key = (res.cpus_per_run, res.gpus_per_run, res.max_retries)
        if key not in self.remotes:
            self.remotes[key] = _remote(_run_task, *key)
        return self.remotes[key].remote(spec, *self.args, res.cpus_per_run)


def reservation(res: Resources) -> dict[str, float]:
    """What one run of ``res`` holds on the pool while it runs (all its workers together)."""
    return {"CPU": res.cpus_per_run, "GPU": res.gpus_per_run}


def room(need: dict[str, float], held: list[dict[str, float]], total: dict[str, float]) -> bool:
    """Whether the pool's ``total`` holds a run needing ``need`` beside the runs ``held``."""
    return all(
        sum(h.get(key, 0.0) for h in held) + amount <= total.get(key, 0.0) + 1e-9
        for key, amount in need.items()
        if amount > 0
    )


def _drain(board: Queue, on_update: Reporter) -> None:
    while not board.empty():
        run_id, state = board.get_nowait()
        on_update(run_id, state)


def _collect(ref: Any, spec: RunSpec, max_retries: int) -> RunResult:
    try:
        result: RunResult = ray.get(ref)
        return result
    except ray.exceptions.RayError as exc:  # the worker died, or the task was cancelled
        cause = getattr(exc, "cause", None)
        raised: BaseException = exc
        if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(cause, Exception):
            raised = cause  # raised inside the task: its own message, not Ray's frames
        error = f"{type(raised).__name__}: {_first_line(raised)}"
        return RunResult.of(spec, "failed", error=error, attempts=max_retries + 1)


def save_result(out_dir: Path, result: RunResult) -> Path:
    path = out_dir / "runs" / f"{result.run_id}.json"
    write_atomic(path, result.to_json())
    return path

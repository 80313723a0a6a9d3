"""What a pool or cluster must offer, checked before Ray starts: a cluster address that answers,
and a node that can hold one run. Each failure is an ``InputError`` (exit 2) within seconds, where
Ray itself would wait: for an unreachable head for minutes, for an unschedulable task forever."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from harness.core.errors import InputError
from harness.suite.settings import Resources

CONNECT_SECONDS = 5.0  # a cluster address that does not answer within this is unreachable


def check_before_start(res: Resources, address: str | None, num_gpus: int | None) -> None:
    """The cluster (``address``, else the suite's, else ``RAY_ADDRESS``) answers; or, for a local
    pool, one run fits on this machine (``num_gpus``: the GPUs the pool declares, default: those
    found). A Ray this process already holds is the pool: ``harness.run.schedule`` checks its nodes
    once attached."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return
    cluster = address or res.address or os.environ.get("RAY_ADDRESS")
    if cluster:
        check_reachable(cluster)
        return
    node = local_node(num_gpus, res.gpus_per_run)
    problem = unfit(res.cpus_per_run, res.gpus_per_run, [node], res.workers)
    if problem:
        raise InputError(f"{problem} (this machine's local pool)")


def local_node(num_gpus: int | None, gpus_per_run: float) -> dict[str, float]:
    """What a local pool started here would hold (GPUs are only counted when a run wants one)."""
    gpus = num_gpus
    if gpus is None:
        gpus = visible_gpus() if gpus_per_run > 0 else 0
    return {"CPU": float(os.cpu_count() or 1), "GPU": float(gpus)}


NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")  # one folder per GPU the driver holds


def visible_gpus() -> int:
    """The NVIDIA GPUs this process may use, counted without importing torch (``validate`` trains
    nothing and stays torch-free): the driver's GPUs (``NVIDIA_GPUS``, else ``nvidia-smi -L``),
    narrowed by ``CUDA_VISIBLE_DEVICES`` as CUDA narrows them, up to its first invalid entry."""
    if NVIDIA_GPUS.is_dir():
        present = sum(1 for _ in NVIDIA_GPUS.iterdir())
    elif smi := shutil.which("nvidia-smi"):
        try:
            listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            listed = ""
        present = sum(1 for line in listed.splitlines() if line.startswith("GPU "))
    else:
        present = 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return present
    wanted = 0
    for entry in visible.split(","):
        if not entry.strip() or entry.strip().startswith("-"):
            break
        wanted += 1
    return min(wanted, present)


def check_reachable(address: str) -> None:
    """``InputError`` unless ``HOST:PORT`` (or ``ray://HOST:PORT``) accepts a connection within
    ``CONNECT_SECONDS``: Ray itself retries an unreachable head for minutes, deaf to Ctrl-C.
    ``auto`` and ``local`` are left to Ray (they look for a cluster on this machine)."""
    target = address.removeprefix("ray://")
    if target in ("auto", "local"):
        return
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"Ray address {address!r}: expected HOST:PORT, e.g. 10.0.0.1:6379")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(
            f"Ray address {address!r} is unreachable ({reason}, waited {CONNECT_SECONDS:g} s):"
            " is `ray start --head` running there?"
        ) from None


def unfit(cpus: float, gpus: float, nodes: list[dict[str, float]], workers: int = 1) -> str | None:
    """Why a run of ``cpus`` CPUs and ``gpus`` GPUs in all, spread over ``workers`` workers (each
    an even share), can run on none of ``nodes`` (each node's resources), or None when the pool
    can hold it: such a task would wait forever. One worker must fit on one node; several may be
    spread over nodes (their placement group packs them where it can)."""
    if workers > 1:
        return _unfit_spread(cpus, gpus, nodes, workers)
    if any(n.get("CPU", 0.0) >= cpus and n.get("GPU", 0.0) >= gpus for n in nodes):
        return None
    most_cpus = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    most_gpus = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    if most_cpus < cpus:
        return f"resources.cpus_per_run is {cpus:g}, but the largest node has {most_cpus:g} CPUs"
    if most_gpus < gpus:
        where = "no node has a GPU" if most_gpus == 0 else f"the most on a node is {most_gpus:g}"
        return f"resources.gpus_per_run is {gpus:g}, but {where}"
    return f"resources: no node has both {cpus:g} CPUs and {gpus:g} GPUs"


def _unfit_spread(
    cpus: float, gpus: float, nodes: list[dict[str, float]], workers: int
) -> str | None:
    each_cpu, each_gpu = cpus / workers, gpus / workers
    places = 0  # how many workers the nodes hold, each node as many as fit on it
    for node in nodes:
        fits = [node.get("CPU", 0.0) / each_cpu]
        if each_gpu > 0:
            fits.append(node.get("GPU", 0.0) / each_gpu)
        places += int(min(fits) + 1e-9)
    if places >= workers:
        return None
    total_cpus = sum(n.get("CPU", 0.0) for n in nodes)
    total_gpus = sum(n.get("GPU", 0.0) for n in nodes)
    if gpus > 0 and total_gpus < gpus:
        have = "no GPU" if total_gpus == 0 else f"{total_gpus:g} GPUs"
        return (
            f"resources.gpus_per_run is {gpus:g} ({workers} workers, one GPU each), "
            f"but the pool has {have}: {gpus - total_gpus:g} short"
        )
    if total_cpus < cpus:
        return (
            f"resources.cpus_per_run is {cpus:g} ({workers} workers), but the pool has "
            f"{total_cpus:g} CPUs: {cpus - total_cpus:g} short"
        )
    return (
        f"resources: {workers} workers of {each_cpu:g} CPUs and {each_gpu:g} GPUs each fit "
        f"{places} at a time on the pool's nodes"
    )

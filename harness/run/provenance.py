"""How a result was made: the code's git commit, package versions, where each method comes from
(built in or a plugin package), machine and device."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from methods import REGISTRY

PACKAGES = ("torch", "transformers", "tokenizers", "datasets", "lm-eval", "ray", "pandas")


def git_commit() -> str | None:
    """The commit of the checkout this package runs from, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's processor elsewhere): floating-point
    results differ between CPU models, so a number is only comparable to one made on the same."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(
    suite_hash: str, method: str, gpus_requested: float, device: torch.device
) -> dict[str, Any]:
    """Where and with what a run ran: code, packages, where its method comes from (``built-in``,
    or the plugin's distribution and version: ``methods.Registry.origin``), host, process,
    device and threads. Every value is a scalar or the packages' mapping (``runs.PROVENANCE``)."""
    return {
        "suite_hash": suite_hash,
        "git_commit": git_commit(),
        "packages": package_versions(),
        "method_origin": REGISTRY.origin(method),
        "python": platform.python_version(),
        "host": platform.node(),
        "cpu_model": cpu_model(),
        "pid": os.getpid(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(),
        "gpus_requested": gpus_requested,
        "cuda_available": torch.cuda.is_available(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }

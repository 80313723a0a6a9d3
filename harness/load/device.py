"""The one device a run computes on, and the memory it used there."""

from __future__ import annotations

import resource

import torch


def pick_device(gpus: float) -> torch.device:
    """CUDA when the run was given a GPU and CUDA is there, else CPU (logical GPUs declared on a
    CPU machine). Everything a run computes then stays on that one device; which one it was is
    recorded in the result's provenance, beside the GPUs the run asked for. A run uses one
    device: the suite schema allows at most one GPU per run."""
    if gpus > 0 and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory allocated on ``device``, or the process's peak resident set on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

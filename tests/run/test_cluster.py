"""Counting this machine's GPUs without torch: the driver's GPUs narrowed by
``CUDA_VISIBLE_DEVICES`` as CUDA narrows them."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.run import cluster


@pytest.fixture
def four_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(4):
        (tmp_path / f"0000:0{i}:00.0").mkdir()
    monkeypatch.setattr(cluster, "NVIDIA_GPUS", tmp_path)


@pytest.mark.parametrize(
    ("visible", "expected"),
    [(None, 4), ("0,1", 2), ("", 0), ("-1", 0), ("2,-1,3", 1), ("0,1,2,3,4,5", 4)],
)
def test_visible_gpus_follow_cuda_visible_devices(
    four_gpus: None, monkeypatch: pytest.MonkeyPatch, visible: str | None, expected: int
) -> None:
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert cluster.visible_gpus() == expected


def test_no_driver_and_no_nvidia_smi_is_no_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster, "NVIDIA_GPUS", tmp_path / "absent")
    monkeypatch.setattr(cluster.shutil, "which", lambda name: None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert cluster.visible_gpus() == 0
    assert cluster.local_node(None, gpus_per_run=1)["GPU"] == 0.0
    assert cluster.local_node(3, gpus_per_run=1)["GPU"] == 3.0

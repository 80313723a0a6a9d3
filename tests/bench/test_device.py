"""``harness bench --device``'s CPU path (what ``scripts/gpu_check.sh`` runs on a GPU): every row
on the tiny config, the FSDP2 row through two gloo workers holding half the state each; and
``--device cuda`` where there is no CUDA is bad input (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from harness.cli.main import app


@pytest.mark.slow
def test_device_bench_cpu_path_writes_every_row(tmp_path: Path) -> None:
    # in a process of its own, as `harness bench` runs: it starts Ray Train in the process and
    # sets torch's threads, neither of which may reach the tests that run after it
    args = ["bench", "--device", "cpu", "--model", "tiny", "--steps", "1", "--batch-size", "2"]
    command = [sys.executable, "-m", "harness.cli", *args, "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "device.json").read_text())
    rows = {r["row"]: r for r in report["rows"]}
    assert set(rows) == {"dpo_step", "grpo_step", "generation.hf", "generation.vllm", "fsdp2_step"}
    for name in ("dpo_step", "grpo_step"):
        assert rows[name]["steps_per_s"] > 0 and rows[name]["tokens_per_s"] > 0
        assert rows[name]["mfu"] is None  # no peak FLOP/s known for a CPU
    assert rows["generation.hf"]["tokens_per_s"] > 0
    fsdp = rows["fsdp2_step"]
    assert fsdp["workers"] == 2 and fsdp["steps_per_s"] > 0
    # each worker holds half the parameters, gradients and optimizer state (within one tensor's
    # rounding: FSDP2 pads a shard to an even split)
    half = rows["dpo_step"]["state_mib"] / 2
    assert fsdp["state_mib_per_worker"] == pytest.approx(half, rel=0.05)
    assert "| dpo_step |" in (tmp_path / "device.md").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with CUDA runs it")
def test_cuda_without_a_gpu_is_bad_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "--device", "cuda", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "no CUDA device" in result.output

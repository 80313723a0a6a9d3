"""Experiment tracking: what a run logs (pure), MLflow on a local file store and W&B offline, read
back with their own readers; a backend that is not installed is a suite error; tracking changes
no run id."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import pytest

from harness.run import tracking
from harness.suite.loader import SuiteError, load_suite
from harness.suite.resolve import resolve
from harness.suite.runs import MetricRow, RunResult, expand
from harness.suite.settings import Tracking

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "suites" / "tiny.yaml"
HASH = "ab" * 32


def result(variant: str = "raft", seed: int = 0, status: str = "done") -> RunResult:
    return RunResult(
        run_id=f"{variant}{seed}",
        suite="tiny",
        variant=variant,
        method=variant,
        seed=seed,
        status=status,
        metrics=[MetricRow("winrate.gold", 0.6, 0.5, 0.7, 32), MetricRow("kl", math.nan)],
        costs={"wall_seconds": 3.5, "optimizer_steps": 4.0},
        rounds=[
            {"round": 0, "steps": 2, "mean_reward": 0.1, "loss": 1.5, "kl": 0.01},
            {"round": 1, "steps": 2, "mean_reward": 0.3, "loss": 1.2, "kl": 0.02},
        ],
        error=None if status == "done" else "ValueError: boom",
    )


def test_tracked_run_holds_params_rounds_and_final_metrics() -> None:
    run = tracking.tracked(result(), {"lr": 2e-5, "k": 4}, {"rounds": 2}, HASH)
    assert run.name == "raft/seed0" and run.group == "raft"
    assert run.params["params.lr"] == "2e-05" and run.params["budget.rounds"] == "2"
    assert run.tags["suite_hash"] == HASH and run.tags["status"] == "done"
    assert run.rounds == [
        (0, {"train/steps": 2.0, "train/mean_reward": 0.1, "train/loss": 1.5, "train/kl": 0.01}),
        (1, {"train/steps": 2.0, "train/mean_reward": 0.3, "train/loss": 1.2, "train/kl": 0.02}),
    ]
    # a NaN metric is left out: trackers reject non-finite values
    assert run.final == {"winrate.gold": 0.6, "cost/wall_seconds": 3.5, "cost/optimizer_steps": 4}
    failed = tracking.tracked(result(status="failed"), {}, {}, HASH)
    assert failed.failed and failed.tags["error"] == "ValueError: boom"


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow not installed")
def test_mlflow_file_store_has_one_run_per_variant_and_seed(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    tracker = tracking.open_tracker(Tracking(backend="mlflow"), "tiny", tmp_path)
    assert tracker is not None
    for seed in (0, 1):
        tracker.log(tracking.tracked(result(seed=seed), {"lr": 1e-5}, {"rounds": 2}, HASH))
    tracker.close()
    client = MlflowClient(tracking.default_mlflow_uri(tmp_path))
    experiment = client.get_experiment_by_name("tiny")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["raft/seed0", "raft/seed1"]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.tags["suite_hash"] == HASH
        assert run.data.params["params.lr"] == "1e-05"
        assert run.data.metrics["winrate.gold"] == 0.6
        history = client.get_metric_history(run.info.run_id, "train/loss")
        assert [(m.step, m.value) for m in history] == [(0, 1.5), (1, 1.2)]


def wandb_records(path: Path) -> list[Any]:
    """The records of a W&B run file (a LevelDB-style log: 7-byte file header, then records
    with a 7-byte header of CRC, length and kind, in 32 KiB blocks)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, buf, records = path.read_bytes(), 7, b"", []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        buf += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(buf)
            records.append(record)
            buf = b""
    return records


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb not installed")
def test_wandb_offline_run_holds_history_and_summary(tmp_path: Path) -> None:
    tracker = tracking.open_tracker(Tracking(backend="wandb"), "tiny", tmp_path)
    assert tracker is not None
    tracker.log(tracking.tracked(result(), {"lr": 1e-5}, {"rounds": 2}, HASH))
    tracker.close()
    (run_dir,) = tracking.wandb_offline_runs(tmp_path)
    (run_file,) = run_dir.glob("run-*.wandb")
    records = wandb_records(run_file)
    kinds = [r.WhichOneof("record_type") for r in records]
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.display_name == "raft/seed0" and run.run_group == "raft"
    assert HASH[:16] in run.tags
    history = [
        {item.key or "".join(item.nested_key): item.value_json for item in r.history.item}
        for r in records
        if r.WhichOneof("record_type") == "history"
    ]
    assert [(h["_step"], h["train/loss"]) for h in history] == [("0", "1.5"), ("1", "1.2")]
    summaries = {
        item.key or "".join(item.nested_key): item.value_json
        for r in records
        if r.WhichOneof("record_type") == "summary"
        for item in r.summary.update
    }
    assert summaries["winrate.gold"] == "0.6"
    assert "exit" in kinds


def test_backend_not_installed_is_a_suite_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    with pytest.raises(SuiteError) as info:
        load_suite(TINY, ["tracking.backend=wandb"])
    (issue,) = info.value.errors
    assert issue.field == "tracking.backend"
    assert "pip install wandb" in issue.expected


def test_tracking_changes_no_run_id_nor_the_suite_hash() -> None:
    plain = load_suite(TINY, [])
    tracked = load_suite(TINY, ["tracking.backend=mlflow", "tracking.experiment=x"])
    assert plain.hash() == tracked.hash()
    assert [s.run_id for s in expand(resolve(plain))] == [
        s.run_id for s in expand(resolve(tracked))
    ]

"""Experiment tracking: each finished run's params, per-round training statistics and final
metrics, logged to MLflow or W&B as one tracked run per variant x seed, tagged with the suite hash.
The only module importing ``mlflow`` or ``wandb`` (each lazily: both are optional).

``tracked(result, ...)`` turns a ``RunResult`` into what is logged (pure, no backend);
``open_tracker`` gives the backend the suite names; the driver hands each result to it as the
result arrives. Nothing here reaches back into a run: the values come with the result.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit

from harness.suite.runs import RunResult
from harness.suite.settings import Tracking

MLFLOW_BATCH = 100  # MLflow's log_batch takes at most 100 params and 1000 metrics per call


@dataclass(frozen=True)
class TrackedRun:
    """One run as a tracker sees it."""

    name: str  # variant/seed<k>
    group: str  # the variant
    tags: dict[str, str]
    params: dict[str, str]
    rounds: list[tuple[int, dict[str, float]]]  # (round, {"train/<stat>": mean over its steps})
    final: dict[str, float] = field(default_factory=dict)  # metrics and costs after the run
    failed: bool = False


def tracked(
    result: RunResult, params: Mapping[str, Any], budget: Mapping[str, Any], suite_hash: str
) -> TrackedRun:
    """What is logged for ``result``: the variant's method params and the suite's budget as
    params; each round's statistics (``RunResult.rounds``: loss parts, KL, mean reward...) at
    step = round; every metric's value and every cost as final metrics. Non-finite values are
    left out (trackers reject them)."""
    rounds = []
    for row in result.rounds:
        stats = {f"train/{k}": float(v) for k, v in row.items() if k != "round" and _finite(v)}
        rounds.append((int(row["round"]), stats))
    final = {m.metric: float(m.value) for m in result.metrics if _finite(m.value)}
    final |= {f"cost/{k}": float(v) for k, v in result.costs.items() if _finite(v)}
    tags = {
        "suite": result.suite,
        "suite_hash": suite_hash,
        "run_id": result.run_id,
        "method": result.method,
        "variant": result.variant,
        "seed": str(result.seed),
        "status": result.status,
        "git_commit": str(result.provenance.get("git_commit", "")),
    }
    if result.error:
        tags["error"] = result.error[:5000]
    flat = {
        "method": result.method,
        "variant": result.variant,
        "seed": result.seed,
        **{f"params.{k}": v for k, v in params.items()},
        **{f"budget.{k}": v for k, v in budget.items()},
    }
    return TrackedRun(
        name=f"{result.variant}/seed{result.seed}",
        group=result.variant,
        tags=tags,
        params={k: str(v) for k, v in flat.items()},
        rounds=rounds,
        final=final,
        failed=result.status != "done",
    )


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


class Tracker(Protocol):
    def log(self, run: TrackedRun) -> None: ...

    def close(self) -> None:
        """After the suite's last run: everything logged is written."""


def open_tracker(config: Tracking, suite_name: str, out_dir: Path) -> Tracker | None:
    """The tracker ``config`` names (None when off), writing under ``out_dir`` unless told
    otherwise (``mlflow_uri``)."""
    experiment = config.experiment or suite_name
    if config.backend == "mlflow":
        return MlflowTracker(mlflow_uri(config.uri, out_dir), experiment)
    if config.backend == "wandb":
        return WandbTracker(experiment, out_dir, config.mode)
    return None


# --------------------------------------------------------------------------- MLflow


def default_mlflow_uri(out_dir: Path) -> str:
    """The embedded default: a file store, ``mlruns/`` beside the suite's results."""
    return (out_dir / "mlruns").resolve().as_uri()


def mlflow_uri(uri: str | None, out_dir: Path) -> str:
    """The tracking URI to open for the suite's ``tracking.uri``: the default store
    (``default_mlflow_uri``) when none is given; a store at a relative path (``mlruns``,
    ``file:mlruns``, ``sqlite:///mlflow.db``) inside ``out_dir``, the suite's results, never the
    current directory; an absolute path or a server as given."""
    if uri is None:
        return default_mlflow_uri(out_dir)
    if uri.startswith(SQLITE):  # sqlite:///relative.db, sqlite:////absolute.db
        path = uri.removeprefix(SQLITE)
        if path and path != ":memory:" and not Path(path).is_absolute():
            return SQLITE + str((out_dir / path).resolve())
        return uri
    if uri.startswith("file:"):
        parts = urlsplit(uri)
        if parts.netloc in ("", "localhost") and not Path(unquote(parts.path)).is_absolute():
            return (out_dir / unquote(parts.path)).resolve().as_uri()
        return uri
    if "://" in uri or urlsplit(uri).scheme or uri in SERVERS:  # a server: http, databricks...
        return uri
    if uri.startswith("~"):
        return str(Path(uri).expanduser())
    return uri if Path(uri).is_absolute() else (out_dir / uri).resolve().as_uri()


SQLITE = "sqlite:///"
SERVERS = ("databricks", "databricks-uc", "uc")  # MLflow's tracking URIs without a scheme


class MlflowTracker:
    """Through ``MlflowClient`` (no global active run): a run per ``log``, its params and tags, a
    metric history per training statistic, the final metrics, then terminated."""

    def __init__(self, uri: str, experiment: str) -> None:
        if uri.startswith("file:") or "://" not in uri:
            # MLflow 3 keeps the file store (in maintenance) behind this switch; it is the only
            # store mlflow-skinny has without a server
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = (
            found.experiment_id if found else self.client.create_experiment(experiment)
        )

    def log(self, run: TrackedRun) -> None:
        from mlflow.entities import Metric, Param, RunTag

        created = self.client.create_run(self.experiment_id, run_name=run.name, tags=run.tags)
        run_id = created.info.run_id
        now = int(time.time() * 1000)
        params = [Param(k, v) for k, v in run.params.items()]
        metrics = [Metric(k, v, now, step) for step, stats in run.rounds for k, v in stats.items()]
        metrics += [Metric(k, v, now, 0) for k, v in run.final.items()]
        for i in range(0, max(len(params), len(metrics)), MLFLOW_BATCH):
            self.client.log_batch(
                run_id,
                metrics=metrics[i : i + MLFLOW_BATCH],
                params=params[i : i + MLFLOW_BATCH],
                tags=[RunTag("mlflow.runName", run.name)] if i == 0 else [],
            )
        self.client.set_terminated(run_id, status="FAILED" if run.failed else "FINISHED")

    def close(self) -> None:
        pass  # each call of the client has written its part


# --------------------------------------------------------------------------- W&B


class WandbTracker:
    """``wandb.init`` per run (offline by default: files under ``<out_dir>/wandb``, uploaded
    later with ``wandb sync``), grouped by variant, the suite hash as a tag."""

    def __init__(self, project: str, out_dir: Path, mode: Literal["offline", "online"]) -> None:
        self.project, self.dir, self.mode = project, out_dir, mode
        out_dir.mkdir(parents=True, exist_ok=True)

    def log(self, run: TrackedRun) -> None:
        import wandb

        settings = wandb.Settings(silent=True, console="off", x_disable_stats=True)
        wb = wandb.init(
            project=self.project,
            name=run.name,
            group=run.group,
            job_type=run.tags["method"],
            tags=[run.tags["suite_hash"][:16], run.tags["status"]],
            config={**run.params, **{f"tag.{k}": v for k, v in run.tags.items()}},
            dir=str(self.dir),
            mode=self.mode,
            reinit="create_new",
            settings=settings,
        )
        try:
            for step, stats in run.rounds:
                wb.log(stats, step=step)
            wb.summary.update(run.final)
        finally:
            wb.finish(exit_code=1 if run.failed else 0)

    def close(self) -> None:
        """W&B writes a run's file from its own service process, after ``finish`` returns: the
        files are complete only once that process has been stopped."""
        import wandb

        wandb.teardown()


def wandb_offline_runs(out_dir: Path) -> Iterator[Path]:
    """The offline W&B run folders under ``out_dir`` (one per tracked run)."""
    yield from sorted((out_dir / "wandb").glob("offline-run-*"))

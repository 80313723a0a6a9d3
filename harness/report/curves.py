"""The checkpoints of a suite's runs as tables (``harness.evaluation.checkpoints`` evaluates them):

- ``curves.parquet`` / ``curves.csv``, one row per (run, checkpoint)::

      suite, run_id, method, variant, seed, round, step, kl, reward.<judge>..., eval_seconds,
      <every cost counter at the checkpoint: samples, generated_tokens, reward_calls...>, flops

  ``flops`` is the compute ledger's estimate (``harness.core.ledger``) of the counters at the
  checkpoint, priced with the run's parameter counts;
- ``curve_answers.parquet``, one row per (run, checkpoint, judged answer)::

      suite, run_id, method, variant, seed, round, prompt_id, cluster, sample, kl, score.<judge>...

  from which every statistic of the curves (``harness.report.curve_report``) is computed.

Written by ``harness.report.results.write_tables`` beside the other tables when some run has
checkpoints (and removed when none has: a table is never older than the runs); run files from
before checkpoints existed have none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from harness.core.files import write_atomic_with
from harness.core.ledger import SIZES, run_flops
from harness.suite.runs import RunResult

CURVES_FILE, CURVES_CSV, ANSWERS_FILE = "curves.parquet", "curves.csv", "curve_answers.parquet"
RUN_KEYS = ["suite", "run_id", "method", "variant", "seed"]
POINT_KEYS = ["round", "step", "kl"]


def point_flops(costs: Mapping[str, float], run_costs: Mapping[str, float]) -> float:
    """FLOPs of a checkpoint's counters ``costs``, priced with the parameter counts of the run's
    final costs ``run_costs`` (``harness.core.ledger.run_flops``); NaN where a counter or a
    count is missing."""
    sizes = {k: run_costs[k] for k in SIZES if k in run_costs}
    return run_flops({**costs, **sizes})


def curve_table(results: Sequence[RunResult], order: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (finished run, checkpoint), sorted by the suite's variant ``order``, seed and
    round."""
    rows = []
    for r in results:
        if r.status != "done":
            continue
        for point in r.checkpoints:
            row = dict(zip(RUN_KEYS, (r.suite, r.run_id, r.method, r.variant, r.seed), strict=True))
            row |= {k: v for k, v in point.items() if k not in ("costs", "answers")}
            row |= point.get("costs", {})
            row["flops"] = point_flops(point.get("costs", {}), r.costs)
            rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=[*RUN_KEYS, *POINT_KEYS])
    return _sorted(df, order)


def answer_table(results: Sequence[RunResult], order: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (finished run, checkpoint, judged answer)."""
    frames = []
    for r in results:
        if r.status != "done":
            continue
        for point in r.checkpoints:
            frame = pd.DataFrame(point["answers"])
            values = (r.suite, r.run_id, r.method, r.variant, r.seed, point["round"])
            for i, (column, value) in enumerate(zip([*RUN_KEYS, "round"], values, strict=True)):
                frame.insert(i, column, value)
            frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*RUN_KEYS, "round", "prompt_id", "cluster", "sample"])
    return _sorted(pd.concat(frames, ignore_index=True), order, ["prompt_id", "sample"])


def _sorted(
    df: pd.DataFrame, order: Sequence[str] | None, extra: Sequence[str] = ()
) -> pd.DataFrame:
    names = list(dict.fromkeys([*(order or []), *sorted(set(df["variant"]))]))
    rank = df["variant"].map({name: i for i, name in enumerate(names)})
    df = df.assign(_rank=rank).sort_values(["_rank", "seed", "round", *extra], kind="stable")
    return df.drop(columns="_rank").reset_index(drop=True)


def write_curves(
    results_dir: Path, results: Sequence[RunResult], order: Sequence[str] | None = None
) -> dict[str, Path]:
    """Write the curve tables atomically when some finished run has checkpoints (else remove
    any left from earlier runs); returns what was written by name."""
    results_dir = Path(results_dir)
    curves = curve_table(results, order)
    files = {name: results_dir / name for name in (CURVES_FILE, CURVES_CSV, ANSWERS_FILE)}
    if curves.empty:
        for path in files.values():
            path.unlink(missing_ok=True)
        return {}
    answers = answer_table(results, order)
    write_atomic_with(files[CURVES_FILE], lambda tmp: curves.to_parquet(tmp, index=False))
    write_atomic_with(files[CURVES_CSV], lambda tmp: curves.to_csv(tmp, index=False))
    write_atomic_with(files[ANSWERS_FILE], lambda tmp: answers.to_parquet(tmp, index=False))
    return files


def load_curves(results_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """(curves, answers) of a results directory, or None when it has no curves."""
    curves, answers = Path(results_dir) / CURVES_FILE, Path(results_dir) / ANSWERS_FILE
    if not (curves.exists() and answers.exists()):
        return None
    return pd.read_parquet(curves), pd.read_parquet(answers)

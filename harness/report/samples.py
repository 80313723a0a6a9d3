"""Every judged sample of a suite as tables: ``samples.parquet`` (the runs' answers) and
``reference_samples.parquet`` (the reference policy's, once per suite).

One row per (run, eval prompt, sample): the run's ``suite, run_id, method, variant, seed``, then
``prompt_id, cluster, sample, length, kl`` (the answer's Monte-Carlo KL term, NaN where the KL was
not estimated on the answers themselves) and one ``score.<judge>`` column per judge. Every
statistic of the leaderboard can be recomputed from these rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from harness.core.files import write_atomic_with
from harness.stats.estimates import sample_index
from harness.suite.runs import RunResult

RUN_COLUMNS = ("suite", "run_id", "method", "variant", "seed")
SAMPLES_FILE = "samples.parquet"
REFERENCE_FILE = "reference_samples.parquet"


def samples_table(results: Sequence[RunResult]) -> pd.DataFrame:
    """The judged samples of every finished run that kept them, one row per prompt and sample."""
    frames = []
    for r in results:
        if r.status != "done" or not r.samples:
            continue
        frame = pd.DataFrame(r.samples)
        values = (r.suite, r.run_id, r.method, r.variant, r.seed)
        for i, (column, value) in enumerate(zip(RUN_COLUMNS, values, strict=True)):
            frame.insert(i, column, value)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*RUN_COLUMNS, "prompt_id", "cluster", "sample"])
    return pd.concat(frames, ignore_index=True)


def reference_table(reference: dict[str, Any]) -> pd.DataFrame:
    """The reference's judged samples (a saved ``ReferenceEval``, as read from its JSON file),
    one row per prompt and sample."""
    k = int(reference.get("samples_per_prompt", 1))
    index = sample_index(len(reference["prompts"]), k, reference.get("clusters") or [])
    scores = {f"score.{j}": list(s) for j, s in reference["scores"].items()}
    return pd.DataFrame({**index, **scores})


def load_reference(results_dir: Path) -> dict[str, Any] | None:
    """The suite's saved reference side (``shared/reference-<key>.json``, the newest when a
    suite's settings changed between runs), or None when there is none readable."""
    files = sorted(
        (results_dir / "shared").glob("reference-*.json"), key=lambda p: p.stat().st_mtime
    )
    for path in reversed(files):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and {"prompts", "scores"} <= set(data):
            return data
    return None


def long_scores(table: pd.DataFrame) -> pd.DataFrame:
    """``score.<judge>`` columns as rows: the same table with ``judge`` and ``score`` columns."""
    judges = [c for c in table.columns if c.startswith("score.")]
    keep = [c for c in table.columns if c not in judges]
    long = table.melt(id_vars=keep, value_vars=judges, var_name="judge", value_name="score")
    long["judge"] = long["judge"].str.removeprefix("score.")
    return long


def write_samples(
    out_dir: Path, results: Sequence[RunResult], reference: dict[str, Any] | None
) -> dict[str, Path]:
    """Write ``samples.parquet`` (and ``reference_samples.parquet`` when the reference is known)
    atomically; returns what was written by name."""
    paths = {SAMPLES_FILE: out_dir / SAMPLES_FILE}
    table = samples_table(results)
    write_atomic_with(paths[SAMPLES_FILE], lambda tmp: table.to_parquet(tmp, index=False))
    if reference is not None:
        paths[REFERENCE_FILE] = out_dir / REFERENCE_FILE
        ref = reference_table(reference)
        write_atomic_with(paths[REFERENCE_FILE], lambda tmp: ref.to_parquet(tmp, index=False))
    return paths

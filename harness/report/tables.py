"""The two results tables as pandas frames: their columns and dtypes, built from run results,
and read from and written to ``.parquet`` / ``.csv`` files.

- the **long table** (``table.parquet`` / ``table.csv``), one row per run x metric::

      suite, run_id, method, variant, seed, metric, value, ci_low, ci_high, n

  (failed runs have no metrics, hence no rows: they are in the run table);
- the **run table** (``runs.parquet`` / ``runs.csv``), one row per run: status, error, attempts,
  every cost (the compute ledger among them: token counters, parameter counts and ``flops``,
  ``harness.core.ledger``), and the provenance flattened (package versions as
  ``pkg.<name>``).

Both are sorted by the suite's variant order, then seed, then metric (then run_id), normalised to
exact dtypes so that parquet and csv read back equal, and written atomically.
``harness.report.results`` finds them in a results directory. Beside them, ``bon_curve.parquet``
(``bon_table``): the best-of-n curve of each run that answers from a pool, one row per (run, n,
metric).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from harness.core.files import write_atomic_with
from harness.suite.runs import RunResult

LONG_COLUMNS = [
    "suite",
    "run_id",
    "method",
    "variant",
    "seed",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "n",
]
COST_COLUMNS = [
    "generated_tokens",
    "samples",
    "reward_calls",
    "optimizer_steps",
    "prompts",
    "wall_seconds",
    "peak_memory_mb",
    # the compute ledger (harness.core.ledger): token counters, parameter counts, FLOPs
    "forward_tokens",
    "trained_tokens",
    "reward_tokens",
    "policy_params",
    "reward_params",
    "flops",
]
RUN_COLUMNS = ["run_id", "suite", "method", "variant", "seed", "status", "error", "attempts"]
BON_COLUMNS = [
    *("suite", "run_id", "method", "variant", "seed"),
    *("n", "kl_bound", "metric", "value", "ci_low", "ci_high", "prompts"),
]
PROVENANCE_COLUMNS = [
    "suite_hash",
    "git_commit",
    "python",
    "host",
    "cpu_model",
    "device",
    "device_name",
    "torch_threads",
    "cuda_visible_devices",
    "started_at",  # unix seconds
    "finished_at",
]
_STR_LONG = ["suite", "run_id", "method", "variant", "metric"]
_INT_COLUMNS = {"seed": "int64", "attempts": "int64", "n": "Int64", "torch_threads": "Int64"}

# Text columns: pandas 3's default text dtype ("str", missing as NaN); pandas 2 calls it "string".
# Floats read back from csv exactly: pandas 3 does by default, pandas 2 when asked.
_PANDAS3 = int(pd.__version__.split(".")[0]) >= 3
TEXT = "str" if _PANDAS3 else "string"
_EXACT: dict[str, Any] = {} if _PANDAS3 else {"float_precision": "round_trip"}


class ResultsError(ValueError):
    """A results directory or table that cannot be read; the message says which and why."""


# --- building ---------------------------------------------------------------------------------


def long_table(results: Sequence[RunResult], order: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (run, metric); ``order`` is the suite's variant order (default: by name)."""
    rows = [
        {"suite": r.suite, "run_id": r.run_id, "method": r.method, "variant": r.variant}
        | {"seed": r.seed, **asdict(m)}
        for r in results
        if r.status == "done"
        for m in r.metrics
    ]
    df = pd.DataFrame(rows, columns=LONG_COLUMNS)
    return _sorted(normalise_long(df), order, ["seed", "metric", "run_id"])


def run_table(results: Sequence[RunResult], order: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per run: status, error, attempts, costs, provenance (packages as ``pkg.<name>``)."""
    rows = [_run_row(r) for r in results]
    extra_costs = sorted({k for r in results for k in r.costs} - set(COST_COLUMNS))
    packages = sorted({f"pkg.{k}" for r in results for k in r.provenance.get("packages") or {}})
    columns = RUN_COLUMNS + COST_COLUMNS + extra_costs + PROVENANCE_COLUMNS + packages
    df = pd.DataFrame(rows, columns=columns)
    return _sorted(normalise_runs(df), order, ["seed", "run_id"])


def bon_table(results: Sequence[RunResult], order: Sequence[str] | None = None) -> pd.DataFrame:
    """The best-of-n curves (``bon_curve.parquet``): one row per (run, n, metric) of every
    finished run that has one (``harness.evaluation.bon.curve``)."""
    rows = [
        {"suite": r.suite, "run_id": r.run_id, "method": r.method, "variant": r.variant}
        | {"seed": r.seed, **point}
        for r in results
        if r.status == "done"
        for point in r.bon_curve
    ]
    df = pd.DataFrame(rows, columns=BON_COLUMNS)
    for column in ("suite", "run_id", "method", "variant", "metric"):
        df[column] = df[column].astype(TEXT)
    df = df.astype({"seed": "int64", "n": "int64", "prompts": "int64"})
    df = df.astype({c: "float64" for c in ("kl_bound", "value", "ci_low", "ci_high")})
    return _sorted(df, order, ["seed", "metric", "n", "run_id"])


def _run_row(r: RunResult) -> dict[str, Any]:
    row: dict[str, Any] = {c: getattr(r, c) for c in RUN_COLUMNS}
    row.update(r.costs)
    row.update({k: r.provenance.get(k) for k in PROVENANCE_COLUMNS})
    packages = r.provenance.get("packages") or {}
    row.update({f"pkg.{name}": version for name, version in packages.items()})
    return row


def normalise_long(df: pd.DataFrame) -> pd.DataFrame:
    """The long table's exact columns and dtypes (so parquet and csv read back equal)."""
    missing = [c for c in LONG_COLUMNS if c not in df.columns]
    if missing:
        raise ResultsError(f"not a long results table: missing column(s) {', '.join(missing)}")
    df = df[LONG_COLUMNS].copy()
    for column in _STR_LONG:
        df[column] = df[column].astype(TEXT)
    for column in ("value", "ci_low", "ci_high"):
        df[column] = pd.to_numeric(df[column]).astype("float64")
    return df.astype({"seed": "int64", "n": "Int64"})


def normalise_runs(df: pd.DataFrame) -> pd.DataFrame:
    """The run table's dtypes: ints, floats for costs, text (missing as NaN) for the rest."""
    missing = [c for c in RUN_COLUMNS if c not in df.columns]
    if missing:
        raise ResultsError(f"not a run table: missing column(s) {', '.join(missing)}")
    df = df.copy()
    for column in df.columns:
        if column in _INT_COLUMNS:
            df[column] = pd.to_numeric(df[column]).astype(_INT_COLUMNS[column])
        elif is_text_column(column):
            df[column] = df[column].astype(TEXT)
        else:
            df[column] = pd.to_numeric(df[column]).astype("float64")
    return df


def is_text_column(name: str) -> bool:
    """Text columns of either table; the others are numbers (unknown ones are extra costs)."""
    numeric = {"seed", "attempts", "n", "value", "ci_low", "ci_high", "torch_threads"}
    numeric |= {"started_at", "finished_at"}
    text = {*_STR_LONG, *RUN_COLUMNS, *PROVENANCE_COLUMNS} - numeric
    return name in text or name.startswith("pkg.")


def _sorted(df: pd.DataFrame, order: Sequence[str] | None, keys: list[str]) -> pd.DataFrame:
    """Sort by variant (suite order, unknown names after, by name), then ``keys``."""
    names = list(dict.fromkeys([*(order or []), *sorted(set(df["variant"]))]))
    rank = df["variant"].map({name: i for i, name in enumerate(names)}).astype("int64")
    df = df.assign(_rank=rank).sort_values(["_rank", *keys], kind="stable")
    return df.drop(columns="_rank").reset_index(drop=True)


# --- files ------------------------------------------------------------------------------------


META_KEY = b"harness"  # the parquet footer's key of what a table says about itself


def write_frame(df: pd.DataFrame, path: Path, meta: dict[str, Any] | None = None) -> None:
    """``df`` to ``path`` (``.parquet``, else csv) atomically, without its index; ``meta`` (JSON)
    goes into a parquet file's footer under ``META_KEY`` (``read_meta``), so it travels with the
    file."""
    if path.suffix == ".parquet":
        if meta is None:
            write_atomic_with(path, lambda tmp: df.to_parquet(tmp, index=False))
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(df, preserve_index=False)
        footer = {**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()}
        table = table.replace_schema_metadata(footer)
        write_atomic_with(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    else:
        write_atomic_with(path, lambda tmp: df.to_csv(tmp, index=False))


def read_checked(path: Path, normalise: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:
    """The table at ``path`` with its columns and dtypes checked, or ``ResultsError``."""
    try:
        return normalise(read_frame(path))
    except ResultsError as exc:
        message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
        raise ResultsError(message) from None
    except (ValueError, TypeError) as exc:
        raise ResultsError(f"{path}: unexpected values in the table ({exc})") from None


def read_meta(path: Path) -> dict[str, Any] | None:
    """What ``write_frame`` stored in a parquet table's footer, or None (a csv file, a table
    written without it, or an unreadable footer)."""
    if path.suffix != ".parquet" or not path.is_file():
        return None
    import pyarrow.parquet as pq

    try:
        footer = pq.read_schema(path).metadata or {}
        meta = json.loads(footer[META_KEY]) if META_KEY in footer else None
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: unreadable table footer ({exc})") from None
    return meta if isinstance(meta, dict) else None


def runs_beside(path: Path) -> Path:
    """The run table beside a long table: ``runs.*`` beside ``table.*``, else
    ``<stem>.runs.<ext>``."""
    stem = path.name.split(".")[0]
    name = f"runs{path.suffix}" if stem == "table" else f"{stem}.runs{path.suffix}"
    return path.with_name(name)


def read_frame(path: Path) -> pd.DataFrame:
    """A ``.parquet`` or ``.csv`` table as it is on disk (csv: text columns as text, floats
    exact); ``ResultsError`` when it cannot be read."""
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".csv":
            header = pd.read_csv(path, nrows=0).columns
            text = {c: TEXT for c in header if is_text_column(str(c))}
            return pd.read_csv(path, dtype=text, keep_default_na=False, na_values=[""], **_EXACT)
    except Exception as exc:  # pyarrow and the csv parser raise many kinds
        raise ResultsError(f"{path}: unreadable table ({type(exc).__name__}: {exc})") from None
    raise ResultsError(f"{path}: not a table (expected a .parquet or .csv file)")

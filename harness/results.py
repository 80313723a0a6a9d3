"""Results: the run files of a suite, collected into pandas tables.

A results directory (written by ``harness run``) holds ``runs/<run_id>.json`` (one ``RunResult``
each) and ``suite.json`` (the resolved suite). From it this module builds

- the **long table** (``table.parquet`` / ``table.csv``), one row per run x metric::

      suite, run_id, method, variant, seed, metric, value, ci_low, ci_high, n

  (failed runs have no metrics, hence no rows: they are in the run table);
- the **run table** (``runs.parquet`` / ``runs.csv``), one row per run: status, error, attempts,
  every cost, and the provenance flattened (package versions as ``pkg.<name>``).

Both are sorted by the suite's variant order, then seed, then metric (then run_id), and written
atomically (temp file + rename). ``aggregate`` turns the long table into one mean per
(variant, metric) with an interval over seeds, used by the leaderboard and the gate.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.runs import RunResult

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
]
RUN_COLUMNS = ["run_id", "suite", "method", "variant", "seed", "status", "error", "attempts"]
PROVENANCE_COLUMNS = [
    "suite_hash",
    "git_commit",
    "python",
    "host",
    "device",
    "device_name",
    "torch_threads",
    "cuda_visible_devices",
    "started_at",  # unix seconds
    "finished_at",
]
_STR_LONG = ["suite", "run_id", "method", "variant", "metric"]
_INT_COLUMNS = {"seed": "int64", "attempts": "int64", "n": "Int64", "torch_threads": "Int64"}

Problem = Callable[[str], None]
# Text columns: pandas 3's default text dtype ("str", missing as NaN); pandas 2 calls it "string".
# Floats read back from csv exactly: pandas 3 does by default, pandas 2 when asked.
_PANDAS3 = int(pd.__version__.split(".")[0]) >= 3
TEXT = "str" if _PANDAS3 else "string"
_EXACT: dict[str, Any] = {} if _PANDAS3 else {"float_precision": "round_trip"}


class ResultsError(ValueError):
    """A results directory or table that cannot be read; the message says which and why."""


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)


# --- the suite --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SuiteInfo:
    """What the tables need from ``suite.json``: names, order, judges, tolerance."""

    name: str
    hash: str | None
    judges: tuple[str, ...]
    primary_judge: str | None
    tolerance: float | None
    seeds: tuple[int, ...]
    variants: tuple[tuple[str, str], ...]  # (name, method), in suite order

    @classmethod
    def from_dump(cls, dump: dict[str, Any]) -> SuiteInfo:
        ev = dump.get("eval") or {}
        tolerance = (ev.get("lm_eval") or {}).get("tolerance")
        return cls(
            name=str(dump.get("name", "")),
            hash=dump.get("hash"),
            judges=tuple(ev.get("judges") or ()),
            primary_judge=ev.get("primary_judge"),
            tolerance=None if tolerance is None else float(tolerance),
            seeds=tuple(int(s) for s in dump.get("seeds") or ()),
            variants=tuple((m["name"], m["method"]) for m in dump.get("methods") or ()),
        )

    @classmethod
    def of(cls, info: SuiteInfo | dict[str, Any] | None) -> SuiteInfo | None:
        """Accept a ``SuiteInfo``, a ``suite.json`` mapping, or ``None``."""
        return cls.from_dump(info) if isinstance(info, dict) else info

    @property
    def variant_order(self) -> list[str]:
        return [name for name, _ in self.variants]


def suite_json_path(path: Path) -> Path:
    """``suite.json`` of a results dir, or beside a table file (``<stem>.suite.json`` unless the
    table is named ``table.*``)."""
    path = Path(path)
    if path.is_dir():
        return path / "suite.json"
    stem = path.name.split(".")[0]
    return path.with_name("suite.json" if stem == "table" else f"{stem}.suite.json")


def load_suite_info(path: Path) -> SuiteInfo | None:
    """The suite of a results dir or table file; ``None`` when there is no ``suite.json``."""
    file = suite_json_path(Path(path))
    if not file.exists():
        return None
    try:
        dump = json.loads(file.read_text())
        return SuiteInfo.from_dump(dump)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ResultsError(f"{file}: unreadable suite file ({type(exc).__name__}: {exc})") from None


def suite_hash(info: SuiteInfo | None, runs: pd.DataFrame | None) -> str | None:
    """The suite's hash: from ``suite.json`` when it has one, else the runs' provenance."""
    if info is not None and info.hash:
        return info.hash
    if runs is not None and "suite_hash" in runs:
        hashes = sorted(set(runs["suite_hash"].dropna()))
        return ", ".join(hashes) or None
    return None


# --- loading run files ------------------------------------------------------------------------


def load_results(results_dir: Path, on_problem: Problem | None = None) -> list[RunResult]:
    """Every readable ``runs/*.json`` of ``results_dir``.

    An unreadable file is skipped and reported through ``on_problem`` (default: a warning). With a
    ``suite.json``, runs of variants or seeds no longer in the suite are skipped and reported, and
    of two runs of one (variant, seed) the newer file is kept (the older was an earlier version of
    that variant). Raises ``ResultsError`` when there is no ``runs/`` folder.
    """
    report = on_problem or _warn
    runs_dir = Path(results_dir) / "runs"
    if not runs_dir.is_dir():
        raise ResultsError(f"{results_dir}: no runs/ folder (is this a results directory?)")
    loaded: list[tuple[Path, RunResult]] = []
    for file in sorted(runs_dir.glob("*.json")):
        try:
            loaded.append((file, RunResult.from_json(file.read_text())))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            report(f"skipped {file.name}: unreadable run file ({type(exc).__name__}: {exc})")
    info = load_suite_info(Path(results_dir))
    return _current(loaded, info, report) if info else [r for _, r in loaded]


def _current(
    loaded: list[tuple[Path, RunResult]], info: SuiteInfo, report: Problem
) -> list[RunResult]:
    """Drop runs outside the suite; keep the newest of duplicate (variant, seed) runs."""
    variants, seeds = set(info.variant_order), set(info.seeds)
    newest: dict[tuple[str, int], tuple[Path, RunResult]] = {}
    for file, result in loaded:
        if result.variant not in variants or (seeds and result.seed not in seeds):
            report(f"skipped {file.name}: {result.variant}/seed{result.seed} is not in suite.json")
            continue
        key = (result.variant, result.seed)
        if key in newest:
            older, newer = sorted([newest[key], (file, result)], key=lambda p: p[0].stat().st_mtime)
            report(
                f"skipped {older[0].name}: superseded by {newer[0].name} ({key[0]}/seed{key[1]})"
            )
            newest[key] = newer
        else:
            newest[key] = (file, result)
    return [result for _, result in newest.values()]


# --- tables -----------------------------------------------------------------------------------


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


# --- writing and reading ----------------------------------------------------------------------


def write_tables(
    results_dir: Path, results: Sequence[RunResult], info: SuiteInfo | None = None
) -> dict[str, Path]:
    """Write ``table.parquet/.csv`` and ``runs.parquet/.csv`` atomically; return their paths."""
    results_dir = Path(results_dir)
    info = info or load_suite_info(results_dir)
    order = info.variant_order if info else None
    frames = {"table": long_table(results, order), "runs": run_table(results, order)}
    paths: dict[str, Path] = {}
    for name, df in frames.items():
        for ext in ("parquet", "csv"):
            path = results_dir / f"{name}.{ext}"
            _write_frame(df, path)
            paths[f"{name}.{ext}"] = path
    return paths


def _write_frame(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".parquet":
        df.to_parquet(tmp, index=False)
    else:
        df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def read_table(path_or_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(long table, run table or None) from a results dir or a ``.parquet``/``.csv`` table.

    A directory gives its ``table.parquet`` (else ``table.csv``, else its ``runs/*.json``); a
    file gives itself, and the run table beside it (``runs.*`` beside ``table.*``, else
    ``<stem>.runs.<ext>``) when there is one.
    """
    path = Path(path_or_dir)
    if not path.exists():
        raise ResultsError(f"{path}: no such file or directory")
    if path.is_dir():
        return _read_dir(path)
    long_df = _checked(path, normalise_long)
    runs_file = _runs_beside(path)
    runs_df = _checked(runs_file, normalise_runs) if runs_file.exists() else None
    return long_df, runs_df


def _checked(path: Path, normalise: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:
    """The table at ``path`` with its columns and dtypes checked, or ``ResultsError``."""
    try:
        return normalise(_read_frame(path))
    except ResultsError as exc:
        message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
        raise ResultsError(message) from None
    except (ValueError, TypeError) as exc:
        raise ResultsError(f"{path}: unexpected values in the table ({exc})") from None


def _read_dir(path: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    for name in ("table.parquet", "table.csv"):
        if (path / name).exists():
            return read_table(path / name)
    if (path / "runs").is_dir():
        info = load_suite_info(path)
        results = load_results(path)
        order = info.variant_order if info else None
        return long_table(results, order), run_table(results, order)
    raise ResultsError(f"{path}: no table.parquet, table.csv or runs/ folder in this directory")


def _runs_beside(path: Path) -> Path:
    stem = path.name.split(".")[0]
    name = f"runs{path.suffix}" if stem == "table" else f"{stem}.runs{path.suffix}"
    return path.with_name(name)


def _read_frame(path: Path) -> pd.DataFrame:
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


# --- aggregation over seeds -------------------------------------------------------------------

# Two-sided 95% Student t quantiles for 1..30 degrees of freedom; beyond, 1.96 + 2.4/df
# (within 0.003 of the exact value).
_T95: tuple[float, ...] = (
    *(12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228),
    *(2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086),
    *(2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042),
)


def t95(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom."""
    return _T95[df - 1] if df <= len(_T95) else 1.96 + 2.4 / df


def seed_interval(
    values: pd.Series, lows: pd.Series, highs: pd.Series
) -> tuple[float, float, float]:
    """(mean, low, high) over seeds: a 95% t-interval; one seed keeps its own interval."""
    keep = values.notna()
    values, lows, highs = values[keep], lows[keep], highs[keep]
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    if len(values) == 1:
        return float(values.iloc[0]), float(lows.iloc[0]), float(highs.iloc[0])
    mean = float(values.mean())
    half = t95(len(values) - 1) * float(values.std(ddof=1)) / math.sqrt(len(values))
    return mean, mean - half, mean + half


# Metrics bounded by definition: an interval over few seeds is cut to the possible range.
BOUNDS = {
    "winrate.": (0.0, 1.0),
    "capability.": (0.0, 1.0),
    "capability_delta.": (-1.0, 1.0),
    "distinct_": (0.0, 1.0),
}


def clip_to_bounds(metric: str, low: float, high: float) -> tuple[float, float]:
    """``(low, high)`` cut to the range the metric can take (e.g. [0, 1] for a win-rate)."""
    for prefix, (lo, hi) in BOUNDS.items():
        if metric.startswith(prefix):
            return max(low, lo), min(high, hi)
    return low, high


def aggregate(long_df: pd.DataFrame) -> pd.DataFrame:
    """One row per (variant, metric): method, seeds, mean, ci_low, ci_high (over seeds).

    Rows keep the table's order (variant order first, then metric).
    """
    rows = []
    for (variant, metric), group in long_df.groupby(["variant", "metric"], sort=False):
        mean, low, high = seed_interval(group["value"], group["ci_low"], group["ci_high"])
        low, high = clip_to_bounds(str(metric), low, high)
        method = str(group["method"].iloc[0])
        seeds = int(group["value"].notna().sum())
        rows.append((variant, method, metric, seeds, mean, low, high))
    columns = ["variant", "method", "metric", "seeds", "mean", "ci_low", "ci_high"]
    return pd.DataFrame(rows, columns=columns)

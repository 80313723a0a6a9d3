"""Results: a suite's results directory, read into pandas tables, and the mean over seeds.

A results directory (written by ``harness run``) holds ``runs/<run_id>.json`` (one ``RunResult``
each) and ``suite.json`` (the resolved suite); ``harness leaderboard`` adds the long table and the
run table (``table.*``, ``runs.*``; their columns and files are ``harness.report.tables``'), the
judged samples (``harness.report.samples``) and the comparisons of variants
(``harness.report.compare``). This module loads the run files (skipping unreadable and stale ones),
writes the two tables from them, reads the tables back from a directory or a table file, and
``aggregate`` turns the long table into one mean per (variant, metric) with an interval over seeds,
used by the leaderboard and the gate.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.core.errors import InputError
from harness.core.files import write_atomic
from harness.core.judges import Judges
from harness.core.rules import DEFAULT_TOLERANCE
from harness.report.compare import SampleTables, load_samples, sample_files, write_comparisons
from harness.report.curves import write_curves
from harness.report.samples import REFERENCE_FILE, SAMPLES_FILE, load_reference, write_samples
from harness.report.tables import (
    ResultsError,
    bon_table,
    long_table,
    normalise_long,
    normalise_runs,
    read_checked,
    run_table,
    runs_beside,
    write_frame,
)
from harness.stats.estimates import VarianceComponents, variance_components
from harness.suite.runs import RunFileError, RunResult

Problem = Callable[[str], None]


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


CORRUPT = "corrupt"  # runs/corrupt/: run files that could not be read, set aside


def read_run_files(runs_dir: Path, report: Problem) -> list[tuple[Path, RunResult]]:
    """Every ``*.json`` of ``runs_dir`` that holds a run result. One that does not (truncated,
    ``null``, a field of the wrong type) is moved to ``runs/corrupt/`` and reported by name:
    its run is then not done, and the next ``harness run`` redoes it."""
    loaded: list[tuple[Path, RunResult]] = []
    for file in sorted(runs_dir.glob("*.json")):
        try:
            loaded.append((file, RunResult.from_json(file.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            said = str(exc) if isinstance(exc, RunFileError) else f"{type(exc).__name__}: {exc}"
            reason = " ".join(said.split())[:200]
            report(f"{file}: unreadable run file ({reason}); {_quarantine(file)}")
    return loaded


def _quarantine(file: Path) -> str:
    folder = file.parent / CORRUPT
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        return f"left in place ({folder} is not a folder of its own)"
    try:
        folder.mkdir(exist_ok=True)
        os.replace(file, folder / file.name)
    except OSError as exc:
        return f"left in place ({exc.strerror})"
    return f"moved to {folder}/ (its run will be redone)"


def corrupt_files(results_dir: Path) -> list[Path]:
    """The run files set aside in ``runs/corrupt/``."""
    return sorted((Path(results_dir) / "runs" / CORRUPT).glob("*.json"))


def load_results(results_dir: Path, on_problem: Problem | None = None) -> list[RunResult]:
    """Every readable ``runs/*.json`` of ``results_dir``.

    An unreadable file is set aside (``read_run_files``) and reported through ``on_problem``
    (default: a warning). With a ``suite.json``, runs of variants or seeds no longer in the suite
    are skipped and reported, and of two runs of one (variant, seed) the newer file is kept (the
    older was an earlier version of that variant). Raises ``ResultsError`` when there is no
    ``runs/`` folder.
    """
    report = on_problem or _warn
    runs_dir = Path(results_dir) / "runs"
    if not runs_dir.is_dir():
        raise ResultsError(f"{results_dir}: no runs/ folder (is this a results directory?)")
    loaded = read_run_files(runs_dir, report)
    info = load_suite_info(Path(results_dir))
    return _current(loaded, info, report) if info else [r for _, r in loaded]


# suite fields a rerun into the same folder may change: which variants and seeds, and the pool
RERUN_FREE = ("methods", "seeds", "resources")


def merged_suite(results_dir: Path, dump: dict[str, Any]) -> dict[str, Any]:
    """The ``suite.json`` for a run of ``dump`` into ``results_dir``. When the folder already
    holds runs, its seeds and variants are joined with the new ones (a variant defined anew
    takes its new definition), so that the tables describe every finished run in the folder;
    ``InputError`` when the two suites differ in anything else (budget, data, models,
    evaluation...): their numbers would not be comparable."""
    file = Path(results_dir) / "suite.json"
    if not file.exists() or not any((Path(results_dir) / "runs").glob("*.json")):
        return dump
    try:
        old = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(old, dict) or not isinstance(old.get("methods"), list):
            raise ValueError("not a suite")
        old_seeds, old_methods = [int(x) for x in old["seeds"]], list(old["methods"])
        old_names = [m["name"] for m in old_methods]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise InputError(
            f"{file}: unreadable ({type(exc).__name__}: {exc}); move the folder away or give"
            " another --out"
        ) from None
    differs = sorted(k for k in {*old, *dump} if k not in RERUN_FREE and old.get(k) != dump.get(k))
    if differs:
        raise InputError(
            f"{results_dir} holds runs of this suite with another {', '.join(differs)}: their"
            " numbers would not be comparable with the new ones; give another --out"
        )
    new = {m["name"]: m for m in dump["methods"]}
    methods = [new.get(m["name"], m) for m in old_methods]
    methods += [m for name, m in new.items() if name not in old_names]
    seeds = old_seeds + [s for s in dump["seeds"] if s not in old_seeds]
    return {**dump, "methods": methods, "seeds": seeds}


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


# --- the tables of a results directory -------------------------------------------------------


BON_FILE = "bon_curve.parquet"

# suite fields that do not define the comparison: which variants (with their parameters) and
# seeds, which is what a candidate puts under test, the pool, the name; and the tolerance, which
# is the baseline's
NOT_SETTINGS = ("name", "methods", "seeds", "resources")
IGNORED_SETTINGS = ("eval.lm_eval.tolerance",)


def suite_settings(dump: dict[str, Any]) -> dict[str, Any]:
    """The settings of a suite (``suite.json``) that define a comparison: world or models, data,
    budget, training, evaluation; everything but ``NOT_SETTINGS``."""
    return {k: v for k, v in dump.items() if k not in NOT_SETTINGS}


def settings_hash(settings: dict[str, Any]) -> str:
    """A short hash of ``suite_settings`` (ignoring ``IGNORED_SETTINGS``), equal exactly when the
    settings are."""
    kept = json.loads(json.dumps(settings, sort_keys=True, default=str))
    lm_eval = (kept.get("eval") or {}).get("lm_eval")
    if isinstance(lm_eval, dict):
        lm_eval.pop("tolerance", None)
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


def table_meta(dump: dict[str, Any] | None, samples: SampleTables | None) -> dict[str, Any]:
    """What a table says about itself (in its parquet footer, ``tables.read_meta``), so that it
    can be gated without the files beside it: ``settings`` and their ``settings_hash``, the
    ``methods`` (each variant's definition) and ``seeds`` of the suite, and per judge the
    ``variance`` components of its win-rates (``harness.stats.estimates.VarianceComponents``,
    measured on the samples; none with one seed)."""
    meta: dict[str, Any] = {"variance": {}}
    if dump is not None:
        settings = suite_settings(dump)
        meta["settings"], meta["settings_hash"] = settings, settings_hash(settings)
        meta["methods"] = {m["name"]: m for m in dump.get("methods") or []}
        meta["seeds"] = list(dump.get("seeds") or [])
    if samples is not None:
        meta["variance"] = _variance(samples)
    return meta


def _variance(samples: SampleTables) -> dict[str, dict[str, float | int]]:
    out = {}
    for judge in samples.judges:
        try:
            out[judge] = variance_components(samples.prompts(judge), "win").to_dict()
        except ValueError:  # one seed: no between-run variance to store
            continue
    return out


def stored_components(meta: dict[str, Any] | None, judge: str) -> VarianceComponents | None:
    """The variance components of ``judge``'s win-rates that a table stored (``table_meta``), or
    None; ``ResultsError`` when they are there but malformed."""
    stored = ((meta or {}).get("variance") or {}).get(judge)
    if stored is None:
        return None
    try:
        return VarianceComponents.from_dict(stored)
    except ValueError as exc:
        raise ResultsError(f"the table's variance components of {judge}: {exc}") from None


def write_tables(
    results_dir: Path, results: Sequence[RunResult], info: SuiteInfo | None = None
) -> dict[str, Path]:
    """Write every judged sample (``samples.parquet``, ``reference_samples.parquet``:
    ``harness.report.samples``), ``table.parquet/.csv`` (the parquet with ``table_meta`` in its
    footer), ``runs.parquet/.csv`` and ``bon_curve.parquet`` (``harness.report.tables.bon_table``)
    atomically, the checkpoints when there are any (``curves.parquet``, ``curve_answers.parquet``:
    ``harness.report.curves``) and, when the samples are there, every pair of variants compared
    (``comparisons.parquet``: ``harness.report.compare``); return their paths."""
    results_dir = Path(results_dir)
    info = info or load_suite_info(results_dir)
    order = info.variant_order if info else None
    paths: dict[str, Path] = dict(write_samples(results_dir, results, load_reference(results_dir)))
    samples = load_samples(results_dir)
    meta = table_meta(_suite_dump(results_dir), samples)
    frames = {"table": long_table(results, order), "runs": run_table(results, order)}
    for name, df in frames.items():
        for ext in ("parquet", "csv"):
            path = results_dir / f"{name}.{ext}"
            write_frame(df, path, meta if name == "table" and ext == "parquet" else None)
            paths[f"{name}.{ext}"] = path
    paths[BON_FILE] = results_dir / BON_FILE
    write_frame(bon_table(results, order), paths[BON_FILE])
    paths.update(write_curves(results_dir, results, order))
    return {**paths, **write_comparisons(results_dir, samples)}


def _suite_dump(path: Path) -> dict[str, Any] | None:
    file = suite_json_path(path)
    try:
        dump = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None
    except (OSError, ValueError):
        return None
    return dump if isinstance(dump, dict) else None


def ship_baseline(results_dir: Path, stem: Path) -> list[Path]:
    """Copy a results dir's tables to a baseline ``<stem>.parquet`` that can be gated against
    as the results dir itself: the long table (with ``table_meta`` in its footer, made afresh),
    ``<stem>.runs.parquet``, ``<stem>.suite.json`` and the judged samples
    (``<stem>.samples.parquet``, ``<stem>.reference_samples.parquet``, zstd-compressed), which
    ``harness check`` finds beside the table and pairs with a candidate's. Returns the files."""
    results_dir, stem = Path(results_dir), Path(stem)
    long_df, runs_df = read_table(results_dir)
    samples_file, reference_file = sample_files(results_dir)
    if not samples_file.is_file() or not reference_file.is_file():
        raise ResultsError(f"{results_dir}: no {SAMPLES_FILE} and {REFERENCE_FILE} to ship")
    table = stem.with_name(f"{stem.name}.parquet")
    out_samples, out_reference = sample_files(table)
    suite = suite_json_path(table)
    meta = table_meta(_suite_dump(results_dir), load_samples(results_dir))
    write_frame(long_df, table, meta)
    written = [table]
    if runs_df is not None:
        written.append(runs_beside(table))
        write_frame(runs_df, written[-1], {})
    for source, target in ((samples_file, out_samples), (reference_file, out_reference)):
        write_frame(pd.read_parquet(source), target, {})
        written.append(target)
    if suite_json_path(results_dir).is_file():
        write_atomic(suite, suite_json_path(results_dir).read_text(encoding="utf-8"))
        written.append(suite)
    return written


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
    long_df = read_checked(path, normalise_long)
    runs_file = runs_beside(path)
    runs_df = read_checked(runs_file, normalise_runs) if runs_file.exists() else None
    return long_df, runs_df


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
    values: pd.Series, lows: pd.Series, highs: pd.Series, within: bool = False
) -> tuple[float, float, float]:
    """(mean, low, high) over seeds: a 95% t-interval; one seed keeps its own interval. With
    ``within`` (a metric whose runs share their units, e.g. a capability's items: every seed
    answers the same items, so the seeds cannot show the items' variance), the runs' own mean
    half-width squared is added to the t-interval's: ``sqrt(t^2 s^2 / S + mean(h_i^2))``, as the
    gate's seed-means route combines them (``harness.stats.paired.seed_means_difference``)."""
    keep = values.notna()
    values, lows, highs = values[keep], lows[keep], highs[keep]
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    if len(values) == 1:
        return float(values.iloc[0]), float(lows.iloc[0]), float(highs.iloc[0])
    mean = float(values.mean())
    half = t95(len(values) - 1) * float(values.std(ddof=1)) / math.sqrt(len(values))
    if within:
        own = ((highs - lows) / 2).dropna()
        half = math.sqrt(half**2 + (float((own**2).mean()) if not own.empty else 0.0))
    return mean, mean - half, mean + half


# metrics whose runs share their units (the same items), so the seeds cannot show those units'
# variance (``seed_interval``'s ``within``)
WITHIN = ("capability_delta.", "capability.")


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
        within = str(metric).startswith(WITHIN)
        mean, low, high = seed_interval(group["value"], group["ci_low"], group["ci_high"], within)
        low, high = clip_to_bounds(str(metric), low, high)
        method = str(group["method"].iloc[0])
        seeds = int(group["value"].notna().sum())
        rows.append((variant, method, metric, seeds, mean, low, high))
    columns = ["variant", "method", "metric", "seeds", "mean", "ci_low", "ci_high"]
    return pd.DataFrame(rows, columns=columns)


# --- what is in a table ------------------------------------------------------------------------


def metric_suffixes(long_df: pd.DataFrame, prefix: str) -> list[str]:
    names = long_df["metric"][long_df["metric"].str.startswith(prefix)].str.removeprefix(prefix)
    return sorted(set(names))


def judges_of(long_df: pd.DataFrame, info: SuiteInfo | None) -> list[str]:
    """Judges with win-rates in the table: the suite's order first, then any others by name."""
    found = metric_suffixes(long_df, "winrate.")
    listed = [j for j in (info.judges if info else ()) if j in found]
    return listed + [j for j in found if j not in listed]


def judges_ranked(judges: list[str], info: SuiteInfo | None) -> Judges:
    """The table's judges, ranked by the suite's primary judge when the table has it, else by
    the default rule (``Judges.of``: a bare table has no suite to name one)."""
    return Judges.of(judges, info.primary_judge if info else None)


def tolerance_of(info: SuiteInfo | None) -> float:
    """The suite's tolerance, else ``DEFAULT_TOLERANCE``."""
    return info.tolerance if info and info.tolerance is not None else DEFAULT_TOLERANCE


def variant_methods(
    long_df: pd.DataFrame, runs_df: pd.DataFrame | None, info: SuiteInfo | None
) -> dict[str, str]:
    """variant -> method for every variant in the tables: the suite's order, then by name."""
    frames = [df for df in (long_df, runs_df) if df is not None]
    methods = {v: m for df in frames for v, m in zip(df["variant"], df["method"], strict=True)}
    order = [v for v in (info.variant_order if info else []) if v in methods]
    order += sorted(v for v in methods if v not in order)
    return {v: methods[v] for v in order}

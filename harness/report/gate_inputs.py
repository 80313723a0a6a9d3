"""What the regression gate refuses to compare (``GateInputError``, exit 2), and what it flags.

Refused: a gated value outside the range its metric can take or not a number; an interval that
excludes its own value, has one end only, or is missing where the gate would need it (a metric
with one seed); a (variant, seed, metric) in more than one row of a table, a run (``run_id``)
under more than one (variant, seed), a (variant, seed) in more than one row of a run table, a
(variant, seed, prompt_id, sample) in more than one row of ``samples.parquet`` (a (prompt_id,
sample) of ``reference_samples.parquet``), a judge's score that is infinite (or, for the
reference, missing); a baseline metric that is not a number; and two sides made under different
settings (budget, data, models or world, training decoding, evaluation), which are refused unless
asked for (``harness check --allow-mismatch``): a difference between such sides is not the
method's.

Flagged under the verdict: runs of a compared variant that did not finish (``unfinished_runs``:
failed in the run table, or done there without rows in the table), which make a verdict that would
pass inconclusive; and sides whose settings cannot be checked (``settings_unknown``: no
``suite.json`` beside them and no suite hash to compare).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from harness.core.rules import MAX_TOLERANCE
from harness.report.compare import SampleTables
from harness.report.results import IGNORED_SETTINGS, NOT_SETTINGS, suite_json_path
from harness.report.tables import runs_beside

# the range each gated metric can take (a win-rate is a fraction; a delta, of two fractions)
RANGES = {"winrate.": (0.0, 1.0), "capability_delta.": (-1.0, 1.0), "capability.": (0.0, 1.0)}
# one row each: a repeated key would count as another seed (another sample)
TABLE_KEY = ("variant", "seed", "metric")
RUNS_KEY = ("variant", "seed")
SAMPLE_KEY = ("variant", "seed", "prompt_id", "sample")
REFERENCE_KEY = ("prompt_id", "sample")
SLACK = 1e-9  # a value this close to an end of its interval is inside it


class GateInputError(ValueError):
    """Input the gate cannot compare; the message says what and where."""


def check_values(long: pd.DataFrame, side: str) -> None:
    """``GateInputError`` naming the first value of a gated metric that is missing (NaN), not
    finite or outside its range. An interval end may be missing, or beyond the range by up to the
    range's width (a normal-approximation interval of an accuracy of 0.97 reaches 1.03), but not
    infinite or further out."""
    for prefix, (low, high) in RANGES.items():
        rows = long[long["metric"].str.startswith(prefix)]
        width = high - low
        for column in ("value", "ci_low", "ci_high"):
            values = rows[column]
            lo, hi = (low, high) if column == "value" else (low - width, high + width)
            bad = ~values.between(lo, hi)
            if column != "value":
                bad &= values.notna()
            if bad.any():
                row = rows[bad].iloc[0]
                what = (
                    "where a number is needed"
                    if math.isnan(row[column])
                    else f"outside [{lo:g}, {hi:g}]"
                )
                raise GateInputError(f"{side}: {_row(row)} has {column} {row[column]}, {what}")


def _row(row: pd.Series) -> str:
    return f"{row['metric']} of {row['variant']} (seed {row['seed']})"


def _gated(long: pd.DataFrame) -> pd.DataFrame:
    return long[long["metric"].str.startswith(tuple(RANGES))]


def check_intervals(long: pd.DataFrame, side: str) -> None:
    """``GateInputError`` naming the first row of a gated metric whose interval excludes its own
    value, has one end only, or is missing where the gate would take the row as exact (the only
    seed of its variant and metric: the seed-means basis takes that seed's own interval)."""
    rows = _gated(long)
    low, high, value = rows["ci_low"], rows["ci_high"], rows["value"]
    outside = (low > value + SLACK) | (high < value - SLACK)
    if outside.any():
        row = rows[outside].iloc[0]
        raise GateInputError(
            f"{side}: {_row(row)} has value {row['value']:g} outside its own interval"
            f" [{row['ci_low']:g}, {row['ci_high']:g}]"
        )
    half = low.isna() != high.isna()
    if half.any():
        row = rows[half].iloc[0]
        given, lacking = ("ci_low", "ci_high") if pd.notna(row["ci_low"]) else ("ci_high", "ci_low")
        raise GateInputError(
            f"{side}: {_row(row)} has {given} {row[given]:g} but no {lacking}: an interval needs"
            " both ends"
        )
    valued = rows[value.notna()]
    seeds = valued.groupby(["variant", "metric"], sort=False)["seed"].transform("size")
    alone = valued[(seeds == 1) & valued["ci_low"].isna()]
    if not alone.empty:
        row = alone.iloc[0]
        raise GateInputError(
            f"{side}: {_row(row)} is the only seed of its variant and metric and has no interval:"
            " its uncertainty is unknown, and the gate would take it as exact"
        )


def check_unique(table: pd.DataFrame, key: tuple[str, ...], where: str) -> None:
    """``GateInputError`` naming ``where`` and the first ``key`` that is in more than one row."""
    repeated = table.duplicated(list(key), keep=False)
    if repeated.any():
        first = table[repeated].iloc[0]
        n = int((table[list(key)] == first[list(key)]).all(axis=1).sum())
        shown = ", ".join(f"{k} {first[k]}" for k in key)
        raise GateInputError(
            f"{where}: {shown} is in {n} rows; ({', '.join(key)}) is one row, and repeated rows"
            " would count as more seeds or samples than were run"
        )


def check_run_ids(long: pd.DataFrame, where: str) -> None:
    """``GateInputError`` naming a run (``run_id``) whose rows are under more than one (variant,
    seed): rows copied to other seeds."""
    known = long[long["run_id"].notna() & (long["run_id"] != "")]
    places = known.drop_duplicates(["run_id", "variant", "seed"])
    shared = places[places.duplicated("run_id", keep=False)]
    if not shared.empty:
        run = shared["run_id"].iloc[0]
        mine = shared[shared["run_id"] == run]
        pairs = zip(mine["variant"], mine["seed"], strict=True)
        seen = ", ".join(f"{variant} seed {seed}" for variant, seed in pairs)
        raise GateInputError(
            f"{where}: run {run} has rows under {seen}: a run is one (variant, seed), and copied"
            " rows would count as more seeds than were run"
        )


def check_table(long: pd.DataFrame, runs: pd.DataFrame | None, side: str, runs_where: str) -> None:
    """Every check of one side's tables (``side`` names the side and its file)."""
    check_unique(long, TABLE_KEY, side)
    check_run_ids(long, side)
    check_values(long, side)
    check_intervals(long, side)
    if runs is not None:
        check_unique(runs, RUNS_KEY, runs_where)


def check_samples(samples: SampleTables, samples_file: Path, reference_file: Path) -> None:
    """``GateInputError`` naming the file and key of a repeated sample, or a score that is not a
    number where one is needed (infinite; missing from the reference)."""
    tables = (
        (samples.runs, SAMPLE_KEY, samples_file),
        (samples.reference, REFERENCE_KEY, reference_file),
    )
    for table, key, file in tables:
        for judge, scores in table.groupby("judge", sort=False):
            check_unique(scores, key, f"{file} (judge {judge})")
        bad = ~pd.to_numeric(table["score"]).between(-math.inf, math.inf, inclusive="neither")
        if file == samples_file:
            bad &= table["score"].notna()  # a sample a judge did not score is left out
        if bad.any():
            row = table[bad].iloc[0]
            shown = ", ".join(f"{k} {row[k]}" for k in key)
            raise GateInputError(
                f"{file}: score.{row['judge']} of {shown} is {row['score']}, where a number is"
                " needed"
            )


def table_files(path: Path) -> tuple[Path, Path]:
    """(long table, run table) that ``harness.report.results.read_table`` reads for ``path``;
    the ``runs`` folder for both when a results dir has no table file."""
    if path.is_dir():
        for name in ("table.parquet", "table.csv"):
            if (path / name).exists():
                return path / name, runs_beside(path / name)
        return path / "runs", path / "runs"
    return path, runs_beside(path)


def unfinished_runs(
    side: str, long: pd.DataFrame, runs: pd.DataFrame | None, variant: str, where: str
) -> str | None:
    """One line naming the runs of ``variant`` in the run table ``where`` that did not finish
    (failed, or done without rows in the long table), or None when every run finished or there
    is no run table."""
    if runs is None:
        return None
    mine = runs[runs["variant"] == variant]
    failed = mine[mine["status"] != "done"]
    with_rows = set(long.loc[long["variant"] == variant, "seed"])
    empty = mine[(mine["status"] == "done") & ~mine["seed"].isin(with_rows)]
    if failed.empty and empty.empty:
        return None
    parts = []
    statuses = failed["status"].astype(object).where(failed["status"].notna(), "without a status")
    for status, group in failed.groupby(statuses.astype(str), sort=False):
        errors = [str(e).splitlines()[0][:80] for e in group["error"].dropna() if str(e)]
        said = f": {errors[0]}" if errors else ""
        parts.append(f"{_seeds(group)} {status}{said}")
    if not empty.empty:
        parts.append(f"{_seeds(empty)} done but without rows in the table")
    left = len(mine) - len(failed) - len(empty)
    return (
        f"{side}: {len(failed) + len(empty)} of {len(mine)} runs of {variant} did not finish"
        f" ({'; '.join(parts)}; {where}): its numbers rest on the {left} that did"
    )


def _seeds(runs: pd.DataFrame) -> str:
    seeds = [str(s) for s in runs["seed"]]
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}"


def settings_unknown(sides: list[tuple[str, dict[str, Any] | None, str | None]]) -> list[str]:
    """Each side (``(name, suite.json or None, suite hash or None)``) whose settings cannot be
    checked against the other's: empty when both have a ``suite.json`` or both a suite hash."""
    if all(suite is not None for _, suite, _ in sides):
        return []
    if all(hash_ is not None for _, _, hash_ in sides):
        return []
    return [
        f"{name} has no suite.json beside it"
        + (" (only a suite hash, which the other side lacks)" if hash_ else " and no suite hash")
        for name, suite, hash_ in sides
        if suite is None
    ]


def check_tolerance(tolerance: float, where: str) -> float:
    if not isinstance(tolerance, int | float) or not 0 <= tolerance <= MAX_TOLERANCE:
        raise GateInputError(
            f"{where}: a tolerance is a number in [0, {MAX_TOLERANCE}], got {tolerance}"
        )
    return float(tolerance)


def nan_metric(variant: str, metric: str) -> GateInputError:
    return GateInputError(
        f"baseline: {metric} of {variant} is not a number (NaN): nothing to gate against"
    )


def suite_dump(path: Path) -> dict[str, Any] | None:
    """The ``suite.json`` beside a results dir or table, or None when there is none."""
    file = suite_json_path(path)
    if not file.exists():
        return None
    try:
        dump = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GateInputError(f"{file}: unreadable suite file ({exc})") from None
    if not isinstance(dump, dict):
        raise GateInputError(f"{file}: not a suite (a {type(dump).__name__})")
    return dump


def settings_differences(base: dict[str, Any], cand: dict[str, Any]) -> list[str]:
    """Each setting that differs between two suites, ``path: baseline vs candidate``."""
    flat_b, flat_c = _flat(base), _flat(cand)
    keys = sorted(
        k
        for k in {*flat_b, *flat_c}
        if k.split(".")[0] not in NOT_SETTINGS and k not in IGNORED_SETTINGS
    )
    missing = object()
    out = []
    for key in keys:
        b, c = flat_b.get(key, missing), flat_c.get(key, missing)
        if b != c and not (_nan(b) and _nan(c)):
            shown = ["-" if v is missing else json.dumps(v)[:40] for v in (b, c)]
            out.append(f"{key} {shown[0]} vs {shown[1]}")
    return out


def _nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _flat(dump: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in dump.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):  # an empty mapping sets nothing: its keys are compared
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = value
    return out

"""The regression gate: does a candidate regress against a baseline?

Compared per variant (every variant present in both tables, or one candidate variant NEW against
one baseline variant OLD, where both may come from the same table): each judge's win-rate
(``winrate.<judge>``) and each task's capability delta (``capability_delta.<task>``) that the
baseline has. Each side is the mean over seeds with a 95% interval over seeds (a t-interval; one
seed keeps its own bootstrap / stderr interval), exactly as on the leaderboard.

A metric is a **regression** when the drop is beyond the tolerance *and* the candidate's interval
supports it (``harness.rules.is_regression``, the one rule the leaderboard's ⚠ uses too)::

    drop = baseline_mean - candidate_mean
    regression  <=>  drop > tolerance  and  candidate_ci_high < baseline_mean

(when the candidate has no interval, e.g. one seed without one, the drop alone decides; a drop
exactly at the tolerance passes, with 1e-9 of slack for float error). A metric
of the baseline that the candidate lacks (its runs failed, a judge or task is gone) is
**missing**, and fails the gate like a regression; metrics only the candidate has are ignored.

Tolerance: ``tolerance_override`` (``--tolerance``), else the baseline's ``suite.json``
``eval.lm_eval.tolerance``, else the candidate's, else ``harness.rules.DEFAULT_TOLERANCE`` (0.05).
The same tolerance applies to win-rates and capability deltas (both are fractions).

Bad input raises ``GateInputError`` with a one-line message: a missing or unreadable table, no
common variants (both sides listed), different suites (unless NEW/OLD are named), a variant that
is not there.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TypeAlias

import pandas as pd

from harness.results import ResultsError, SuiteInfo, aggregate, load_suite_info, read_table
from harness.rules import DEFAULT_TOLERANCE, is_regression
from harness.tables import normalise_long

GATED = ("winrate.", "capability_delta.")
Table: TypeAlias = pd.DataFrame | str | Path


class GateInputError(ValueError):
    """Input the gate cannot compare; the message says what and where."""


@dataclass(frozen=True)
class VerdictRow:
    variant: str  # the candidate's variant
    against: str  # the baseline's variant (the same name unless --against)
    metric: str
    baseline: float
    candidate: float
    candidate_high: float  # upper end of the candidate's 95% interval
    drop: float
    tolerance: float
    status: str  # "ok" | "regression" | "missing"

    def reason(self) -> str:
        """One line saying why this row is not ok."""
        pair = self.variant if self.variant == self.against else f"{self.variant} vs {self.against}"
        if self.status == "missing":
            return f"{pair}: {self.metric} is in the baseline but missing from the candidate"
        return (
            f"{pair}: {self.metric} dropped {self.drop:.3f} ({self.baseline:.3f} -> "
            f"{self.candidate:.3f}), beyond the tolerance {self.tolerance:.3f}; the candidate's"
            f" 95% upper bound {self.candidate_high:.3f} is below the baseline mean"
        )


@dataclass(frozen=True)
class Verdict:
    rows: list[VerdictRow]
    tolerance: float
    tolerance_source: str  # "--tolerance", "baseline suite.json", "candidate suite.json", "default"

    @property
    def regressions(self) -> list[VerdictRow]:
        return [r for r in self.rows if r.status == "regression"]

    @property
    def missing(self) -> list[VerdictRow]:
        return [r for r in self.rows if r.status == "missing"]

    @property
    def passed(self) -> bool:
        return not self.regressions and not self.missing

    def to_frame(self) -> pd.DataFrame:
        columns = list(VerdictRow.__dataclass_fields__)
        return pd.DataFrame([asdict(r) for r in self.rows], columns=columns)


@dataclass(frozen=True)
class _Side:
    name: str  # "baseline" | "candidate"
    long: pd.DataFrame
    variants: list[str]  # in table order; including variants whose every run failed
    info: SuiteInfo | None


def check(
    baseline: Table,
    candidate: Table | None = None,
    variant: str | None = None,
    against: str | None = None,
    tolerance_override: float | None = None,
) -> Verdict:
    """Compare ``candidate`` to ``baseline`` (long tables, or paths for ``read_table``).

    ``variant`` restricts the comparison to that candidate variant, compared to the baseline's
    ``against`` (default: the same name); ``candidate`` defaults to the baseline then.
    """
    if against is not None and variant is None:
        raise GateInputError("--against needs --variant (the candidate variant to compare)")
    if candidate is None and variant is None:
        raise GateInputError("a candidate is needed unless --variant/--against name two variants")
    base = _side(baseline, "baseline")
    cand = replace(base, name="candidate") if candidate is None else _side(candidate, "candidate")
    pairs = _pairs(base, cand, variant, against)
    tolerance, source = _tolerance(base, cand, tolerance_override)
    rows = [row for pair in pairs for row in _compare(base, cand, *pair, tolerance)]
    if not rows:
        names = ", ".join(old for _, old in pairs)
        raise GateInputError(f"baseline variant(s) {names} have no win-rate or capability metrics")
    return Verdict(rows, tolerance, source)


def _side(table: Table, name: str) -> _Side:
    try:
        if isinstance(table, pd.DataFrame):
            long, runs, info = normalise_long(table), None, None
        else:
            long, runs = read_table(Path(table))
            info = load_suite_info(Path(table))
    except ResultsError as exc:
        raise GateInputError(f"{name}: {exc}") from None
    variants = list(dict.fromkeys(long["variant"]))
    if runs is not None:
        variants += [v for v in dict.fromkeys(runs["variant"]) if v not in variants]
    return _Side(name, long, variants, info)


def _pairs(
    base: _Side, cand: _Side, variant: str | None, against: str | None
) -> list[tuple[str, str]]:
    """(candidate variant, baseline variant) pairs to compare."""
    if variant is not None:
        old = against or variant
        for side, name in ((cand, variant), (base, old)):
            if name not in side.variants:
                have = ", ".join(side.variants) or "none"
                raise GateInputError(f"variant '{name}' not found in the {side.name} (has: {have})")
        return [(variant, old)]
    suites = {side.name: sorted(set(side.long["suite"])) for side in (base, cand)}
    if suites["baseline"] != suites["candidate"]:
        raise GateInputError(
            f"mismatched suites: baseline is {', '.join(suites['baseline']) or 'empty'}, candidate"
            f" is {', '.join(suites['candidate']) or 'empty'} (name --variant and --against to"
            " compare across suites)"
        )
    common = [v for v in base.variants if v in cand.variants]
    if not common:
        raise GateInputError(
            f"no common variants: baseline has {', '.join(base.variants) or 'none'}; candidate"
            f" has {', '.join(cand.variants) or 'none'}"
        )
    return [(v, v) for v in common]


def _tolerance(base: _Side, cand: _Side, override: float | None) -> tuple[float, str]:
    if override is not None:
        if not math.isfinite(override) or override < 0:
            raise GateInputError(f"--tolerance must be a number >= 0, got {override}")
        return override, "--tolerance"
    for side in (base, cand):
        if side.info is not None and side.info.tolerance is not None:
            return side.info.tolerance, f"{side.name} suite.json"
    return DEFAULT_TOLERANCE, "default"


def _stats(side: _Side, variant: str) -> pd.DataFrame:
    """Gated metrics of one variant: metric -> mean, ci_high; win-rates first."""
    agg = aggregate(side.long[side.long["variant"] == variant])
    agg = agg[agg["metric"].str.startswith(GATED)]
    agg = agg.assign(_w=~agg["metric"].str.startswith("winrate.")).sort_values(["_w", "metric"])
    return agg.set_index("metric")[["mean", "ci_high"]]


def _compare(base: _Side, cand: _Side, new: str, old: str, tolerance: float) -> list[VerdictRow]:
    before, after = _stats(base, old), _stats(cand, new)
    rows = []
    for metric, b in before.iterrows():
        before_mean = float(b["mean"])
        if math.isnan(before_mean):
            continue
        if metric not in after.index or pd.isna(after.at[metric, "mean"]):
            nan = math.nan
            rows.append(
                VerdictRow(new, old, str(metric), before_mean, nan, nan, nan, tolerance, "missing")
            )
            continue
        mean, high = float(after.at[metric, "mean"]), float(after.at[metric, "ci_high"])
        status = "regression" if is_regression(before_mean, mean, high, tolerance) else "ok"
        values = (before_mean, mean, high, before_mean - mean, tolerance, status)
        rows.append(VerdictRow(new, old, str(metric), *values))
    return rows

"""The regression gate: is the candidate worse than the baseline by more than the tolerance?

Compared per variant (every variant present in both sides, or one candidate variant NEW against
one baseline variant OLD, both possibly from the same results dir): each judge's win-rate
(``winrate.<judge>``) and each task's capability delta (``capability_delta.<task>``) that the
baseline has. Each metric is decided on the difference ``d = candidate - baseline`` and its 95%
interval ``[low, high]``, which carries both sides' uncertainty:

- **paired samples** (both sides have their judged samples: a results dir, or a table with
  ``<stem>.samples.parquet`` and ``<stem>.reference_samples.parquet`` beside it, and the same
  reference samples; or ``--variant NEW --against OLD`` in one such dir): win-rates per prompt
  (k x k pairs against the reference), the difference by a hierarchical bootstrap (seeds, then
  clusters, then prompts) **paired** on the prompts and on the seeds both sides share
  (``harness.report.compare.winrate_difference``); **samples**: two bootstraps, when the
  references differ;
- **seed means** otherwise (a side is a table without samples; capability deltas always): each
  side's per-seed values (``harness.stats.paired.seed_means_difference``: ``s^2 / S`` on t with
  ``S - 1`` degrees of freedom) plus the level every seed of a variant repeats, which the seeds
  cannot show: a win-rate's prompt clusters from the variance components a table stores
  (``harness.report.results.table_meta``), else, and for a capability's items, each run's own
  interval as a normal half-width.

A side with **one seed** borrows the between-run variance it cannot measure (``VerdictRow.
seed_level``): from the other side's seeds, else from the stored (or the baseline's measured)
variance components (``harness.stats.paired.Borrowed``); with nothing to borrow the metric is
inconclusive, "training variance unknown", with no interval. Coverage of each route at the
default design: ``tests/test_calibration.py``.

Verdict of a metric (``harness.stats.paired.gate_decision``), with ``drop = -d``::

    regression    drop > tolerance and high < 0      (harness.core.rules.is_regression on d)
    pass          low >= -tolerance                  (the interval rules out a drop beyond it)
    inconclusive  otherwise: the interval is too wide to decide at the tolerance

(1e-9 of slack: a drop exactly at the tolerance is not beyond it). For an inconclusive metric
``VerdictRow.decides_at`` (``harness.stats.paired.precision_needed``) is the interval half-width
at which the same difference would be decided: ``d + tolerance`` to pass (when
``drop <= tolerance``), else ``-d`` to be a regression. A metric of the baseline that the
candidate lacks (its runs failed, a judge or task is gone) is **missing**. Overall: regression
when any metric is a regression or missing, else inconclusive when any is, or when a compared
variant of either side has runs that did not finish (``Verdict.unfinished``: failed in its run
table, or done there without rows in the table; its numbers rest on the runs that did), else
pass.

Tolerance: ``tolerance_override`` (``--tolerance``), else the baseline's ``suite.json``
``eval.lm_eval.tolerance``, else ``harness.core.rules.DEFAULT_TOLERANCE`` (0.05); never the
candidate's. The same tolerance applies to win-rates and capability deltas (both fractions).

What defines the comparison and what is under test: the settings (world or models, data,
budget, training, evaluation: ``harness.report.results.suite_settings``, from ``suite.json`` or
else from the settings every ``table.parquet`` stores) must agree, or the sides are refused
unless ``allow_mismatch``; the compared variant's own definition (its method's parameters) and
its seeds are what a candidate changes, listed in ``Verdict.under_test``, no warning.
``Verdict.differences`` names the provenance that differs between the two sides' runs (CPU,
host, device, torch / transformers version, world config) and any settings compared anyway:
numbers are not comparable across them, and the CLI says so under the verdict. ``Verdict.unchecked``
names a side whose settings cannot be checked (no ``suite.json``, no settings stored in the
table, no hash both sides have), and the CLI warns of that too. ``Verdict.power``: per judge,
the drop this design detects at 80% power (``VarianceComponents.min_detectable`` for the
candidate's seeds against the baseline's, on the stored or measured components).

Bad input raises ``GateInputError`` with a one-line message: a missing or unreadable table, no
common variants (both sides listed), different suites (unless NEW/OLD are named), a variant that
is not there, and what ``harness.report.gate_inputs`` refuses (repeated rows, intervals that
exclude their own value, numbers that are not numbers).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeAlias

import pandas as pd

from harness.core.rules import DEFAULT_TOLERANCE
from harness.report.compare import SampleTables, load_samples, sample_files, winrate_difference
from harness.report.gate_inputs import (
    GateInputError,
    check_samples,
    check_table,
    check_tolerance,
    nan_metric,
    settings_differences,
    settings_unknown,
    suite_dump,
    table_files,
    unfinished_runs,
)
from harness.report.results import (
    ResultsError,
    SuiteInfo,
    aggregate,
    load_suite_info,
    read_table,
    settings_hash,
    stored_components,
    suite_hash,
    suite_json_path,
    suite_settings,
)
from harness.report.tables import normalise_long, read_meta
from harness.stats.estimates import Z95, VarianceComponents, variance_components
from harness.stats.paired import (
    Borrowed,
    gate_decision,
    lent_by_components,
    precision_needed,
    seed_means_difference,
)

GATED = ("winrate.", "capability_delta.")
Table: TypeAlias = pd.DataFrame | str | Path


@dataclass(frozen=True)
class VerdictRow:
    variant: str  # the candidate's variant
    against: str  # the baseline's variant (the same name unless --against)
    metric: str
    baseline: float
    candidate: float
    diff: float  # candidate - baseline
    ci_low: float  # 95% interval of diff
    ci_high: float
    tolerance: float
    status: str  # "pass" | "regression" | "inconclusive" | "missing"
    basis: str  # "paired samples" | "samples" | "seed means"
    seed_level: str = "measured"  # where the between-run variance came from (Comparison's)

    @property
    def pair(self) -> str:
        return self.variant if self.variant == self.against else f"{self.variant} vs {self.against}"

    @property
    def decides_at(self) -> float:
        """The interval half-width that would decide this difference
        (``harness.stats.paired.precision_needed``)."""
        return precision_needed(self.diff, self.tolerance)

    def reason(self) -> str:
        """One line saying why this row did not pass."""
        if self.status == "missing":
            return f"{self.pair}: {self.metric} is in the baseline but missing from the candidate"
        if self.seed_level == "none":
            return (
                f"{self.pair}: {self.metric} {self.diff:+.3f} ({self.baseline:.3f} ->"
                f" {self.candidate:.3f}): training variance unknown: a side has one seed and"
                " nothing to borrow the variance between runs from (another seed, or a baseline"
                " table with its variance components), so no interval says what another training"
                " run would give"
            )
        change = (
            f"{self.metric} {self.diff:+.3f} ({self.baseline:.3f} -> {self.candidate:.3f}),"
            f" 95% interval [{self.ci_low:.3f}, {self.ci_high:.3f}] ({self.basis})"
        )
        if self.status == "regression":
            return (
                f"{self.pair}: {change}: dropped {-self.diff:.3f}, beyond the tolerance"
                f" {self.tolerance:.3f}, and the interval lies below 0"
            )
        half = (self.ci_high - self.ci_low) / 2
        return (
            f"{self.pair}: {change}: half-width {half:.3f}, too wide to decide at the tolerance"
            f" {self.tolerance:.3f}; a half-width of {self.decides_at:.3f} would decide it"
        )


@dataclass(frozen=True)
class Verdict:
    rows: list[VerdictRow]
    tolerance: float
    tolerance_source: str  # "--tolerance", "baseline suite.json", "default"
    differences: list[str] = field(default_factory=list)  # provenance that differs, described
    unfinished: list[str] = field(default_factory=list)  # runs that did not finish, per variant
    unchecked: list[str] = field(default_factory=list)  # sides whose settings cannot be checked
    under_test: list[str] = field(default_factory=list)  # what the candidate changed, expectedly
    power: list[str] = field(default_factory=list)  # the detectable drop of this design, per judge

    def with_status(self, status: str) -> list[VerdictRow]:
        return [r for r in self.rows if r.status == status]

    @property
    def regressions(self) -> list[VerdictRow]:
        return self.with_status("regression")

    @property
    def missing(self) -> list[VerdictRow]:
        return self.with_status("missing")

    @property
    def inconclusive(self) -> list[VerdictRow]:
        return self.with_status("inconclusive")

    @property
    def overall(self) -> str:
        """``regression`` (any regression or missing metric), else ``inconclusive`` (any
        inconclusive metric, or runs that did not finish), else ``pass``."""
        if self.regressions or self.missing:
            return "regression"
        return "inconclusive" if self.inconclusive or self.unfinished else "pass"

    @property
    def passed(self) -> bool:
        return self.overall == "pass"

    def to_frame(self) -> pd.DataFrame:
        columns = list(VerdictRow.__dataclass_fields__)
        return pd.DataFrame([asdict(r) for r in self.rows], columns=columns)


@dataclass(frozen=True)
class _Side:
    name: str  # "baseline" | "candidate"
    source: str  # the table's file, or "a table in memory"
    runs_source: str  # the run table's file (or runs folder)
    long: pd.DataFrame
    runs: pd.DataFrame | None
    variants: list[str]  # in table order; including variants whose every run failed
    info: SuiteInfo | None
    world: object  # suite.json's world config (None: unknown or none)
    suite: dict[str, Any] | None  # suite.json (None: none beside the table)
    samples: SampleTables | None  # every judged sample, when a results dir (or table) has them
    meta: dict[str, Any] | None  # what the table stored about itself (results.table_meta)

    @property
    def settings(self) -> dict[str, Any] | None:
        """The settings that define the comparison: suite.json's, else the table's own."""
        if self.suite is not None:
            return suite_settings(self.suite)
        stored = (self.meta or {}).get("settings")
        return stored if isinstance(stored, dict) else None

    @property
    def methods(self) -> dict[str, dict[str, Any]]:
        """Each variant's definition (method and parameters), from suite.json or the table."""
        if self.suite is not None:
            return {m["name"]: m for m in self.suite.get("methods") or [] if isinstance(m, dict)}
        stored = (self.meta or {}).get("methods")
        return stored if isinstance(stored, dict) else {}


def check(
    baseline: Table,
    candidate: Table | None = None,
    variant: str | None = None,
    against: str | None = None,
    tolerance_override: float | None = None,
    allow_mismatch: bool = False,
) -> Verdict:
    """Compare ``candidate`` to ``baseline`` (long tables, or paths: results dirs or tables).

    ``variant`` restricts the comparison to that candidate variant, compared to the baseline's
    ``against`` (default: the same name); ``candidate`` defaults to the baseline then. Sides
    whose suites differ in a setting (``harness.report.gate_inputs``) are refused unless
    ``allow_mismatch``, and then the differences are named in ``Verdict.differences``.
    """
    if against is not None and variant is None:
        raise GateInputError("--against needs --variant (the candidate variant to compare)")
    if candidate is None and variant is None:
        raise GateInputError("a candidate is needed unless --variant/--against name two variants")
    base = _side(baseline, "baseline")
    cand = replace(base, name="candidate") if candidate is None else _side(candidate, "candidate")
    pairs = _pairs(base, cand, variant, against)
    tolerance, source = _tolerance(base, tolerance_override)
    both = base.settings is not None and cand.settings is not None
    settings = settings_differences(base.settings, cand.settings) if both else []  # type: ignore[arg-type]
    if settings and not allow_mismatch:
        raise GateInputError(
            f"the two sides were made with different settings ({'; '.join(settings)}): a"
            " difference would not be the method's (--allow-mismatch compares them anyway)"
        )
    rows = [row for pair in pairs for row in _compare(base, cand, *pair, tolerance)]
    if not rows:
        names = ", ".join(old for _, old in pairs)
        raise GateInputError(f"baseline variant(s) {names} have no win-rate or capability metrics")
    base_runs = _runs_of(base, [old for _, old in pairs])
    cand_runs = _runs_of(cand, [new for new, _ in pairs])
    differences = provenance_differences(base_runs, cand_runs, base.world, cand.world)
    differences += [f"setting {s}" for s in settings]
    unfinished = _unfinished(base, cand, pairs)
    unchecked = [] if candidate is None else _unchecked(base, cand)
    under_test = [line for new, old in pairs for line in _under_test(base, cand, new, old)]
    power = [line for new, old in pairs for line in _power(base, cand, new, old, tolerance)]
    return Verdict(rows, tolerance, source, differences, unfinished, unchecked, under_test, power)


def _under_test(base: _Side, cand: _Side, new: str, old: str) -> list[str]:
    """What the candidate variant changed that a candidate is made to change (its method's
    parameters, its seeds), one line each: expected, so no warning."""
    out = []
    before, after = base.methods.get(old), cand.methods.get(new)
    if before is not None and after is not None and before.get("method") != after.get("method"):
        shown = (json.dumps(m.get("method")) for m in (before, after))
        out.append(f"{new}: method {' vs '.join(shown)}")
    elif before is not None and after is not None:
        changed = settings_differences(
            {k: v for k, v in before.items() if k != "name"},
            {k: v for k, v in after.items() if k != "name"},
        )
        if changed:
            out.append(f"{new}: {'; '.join(changed)}")
    seeds = [_seeds_of(side, v) for side, v in ((base, old), (cand, new))]
    if seeds[0] != seeds[1]:
        out.append(f"{new}: seeds {_span(seeds[0])} vs {_span(seeds[1])}")
    return out


def _seeds_of(side: _Side, variant: str) -> list[int]:
    return sorted({int(s) for s in side.long.loc[side.long["variant"] == variant, "seed"]})


def _span(seeds: list[int]) -> str:
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds)) or "none"


def _components(base: _Side, cand: _Side, judge: str) -> tuple[VarianceComponents, str] | None:
    """The variance components of ``judge``'s win-rates to lend and to plan with: the baseline
    table's stored ones, else the candidate's, else measured on the baseline's samples."""
    for side in (base, cand):
        try:
            stored = stored_components(side.meta, judge)
        except ResultsError as exc:
            raise GateInputError(f"{side.name} {side.source}: {exc}") from None
        if stored is not None:
            return stored, f"the {side.name}'s stored variance components"
    if base.samples is not None and judge in base.samples.judges:
        try:
            measured = variance_components(base.samples.prompts(judge), "win")
        except ValueError:
            return None
        return measured, "the baseline's variance components"
    return None


def _power(base: _Side, cand: _Side, new: str, old: str, tolerance: float) -> list[str]:
    """Per judge, the drop this comparison detects at 80% power (two-sided 5%, as the gate's
    interval): for its own design, the candidate's seeds against the baseline's, its prompts."""
    out = []
    n_cand, n_base = len(_seeds_of(cand, new)), len(_seeds_of(base, old))
    for metric in _stats(base, old).index:
        if not str(metric).startswith("winrate."):
            continue
        judge = str(metric).removeprefix("winrate.")
        found = _components(base, cand, judge)
        prompts = cand.long.loc[
            (cand.long["variant"] == new) & (cand.long["metric"] == metric), "n"
        ]
        if found is None or prompts.dropna().empty or max(n_cand, n_base) < 2:
            continue
        vc, source = found
        n_prompts = int(prompts.dropna().median())
        drop = vc.min_detectable(n_cand, n_prompts, alpha=0.05, power=0.8, n_seeds_b=n_base)
        out.append(
            f"{new} {metric}: a drop of {drop:.3f} is detected at 80% power by this design"
            f" ({n_cand} candidate seed(s) against {n_base}, {n_prompts} prompts; {source});"
            f" the tolerance is {tolerance:.3f}"
        )
    return out


def _unfinished(base: _Side, cand: _Side, pairs: list[tuple[str, str]]) -> list[str]:
    """``gate_inputs.unfinished_runs`` of every compared variant, each side's (once per table
    and variant)."""
    lines: dict[tuple[int, str], str | None] = {}
    for side, variant in [*((base, old) for _, old in pairs), *((cand, new) for new, _ in pairs)]:
        key = (id(side.long), variant)
        if key not in lines:
            label = f"{side.name} {side.source}"
            lines[key] = unfinished_runs(label, side.long, side.runs, variant, side.runs_source)
    return [line for line in lines.values() if line is not None]


def _unchecked(base: _Side, cand: _Side) -> list[str]:
    sides = [(f"{s.name} {s.source}", s.settings, _hash(s)) for s in (base, cand)]
    return settings_unknown(sides)


def _hash(side: _Side) -> str | None:
    """The side's settings hash: its table's, else its suite.json's settings', else (tables
    written before settings were stored) the runs' suite hash."""
    if side.meta and side.meta.get("settings_hash"):
        return str(side.meta["settings_hash"])
    if side.suite is not None:
        return settings_hash(suite_settings(side.suite))
    return suite_hash(side.info, side.runs)


def _side(table: Table, name: str) -> _Side:
    try:
        dump = None
        meta = None
        if isinstance(table, pd.DataFrame):
            long, runs, info, world, samples = normalise_long(table), None, None, None, None
            source = runs_source = "(a table in memory)"
        else:
            path = Path(table)
            long, runs = read_table(path)
            info, world, dump = load_suite_info(path), suite_world(path), suite_dump(path)
            samples = load_samples(path)
            files = table_files(path)
            meta = read_meta(files[0])
            source, runs_source = (str(f) for f in files)
            if world is None and meta is not None:
                world = (meta.get("settings") or {}).get("world")
    except ResultsError as exc:
        raise GateInputError(f"{name}: {exc}") from None
    check_table(long, runs, f"{name} {source}", f"{name} {runs_source}")
    if samples is not None:
        check_samples(samples, *sample_files(Path(table)))  # a DataFrame has no samples
    variants = list(dict.fromkeys(long["variant"]))
    if runs is not None:
        variants += [v for v in dict.fromkeys(runs["variant"]) if v not in variants]
    return _Side(name, source, runs_source, long, runs, variants, info, world, dump, samples, meta)


def _runs_of(side: _Side, variants: list[str]) -> pd.DataFrame | None:
    return None if side.runs is None else side.runs[side.runs["variant"].isin(variants)]


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
    lacking = [v for v in base.variants if v not in cand.variants]
    if lacking:
        raise GateInputError(
            f"the candidate lacks variant(s) {', '.join(lacking)} of the baseline (candidate has"
            f" {', '.join(cand.variants)}); name the one to gate with --variant"
        )
    return [(v, v) for v in common]


def _tolerance(base: _Side, override: float | None) -> tuple[float, str]:
    if override is not None:
        if not math.isfinite(override) or override < 0:
            raise GateInputError(f"--tolerance must be a number >= 0, got {override}")
        return check_tolerance(override, "--tolerance"), "--tolerance"
    if base.info is not None and base.info.tolerance is not None:
        return check_tolerance(base.info.tolerance, "baseline suite.json"), "baseline suite.json"
    return DEFAULT_TOLERANCE, "default"


def _stats(side: _Side, variant: str) -> pd.DataFrame:
    """Gated metrics of one variant: metric -> mean, ci_low, ci_high; win-rates first."""
    agg = aggregate(side.long[side.long["variant"] == variant])
    agg = agg[agg["metric"].str.startswith(GATED)]
    agg = agg.assign(_w=~agg["metric"].str.startswith("winrate.")).sort_values(["_w", "metric"])
    return agg.set_index("metric")[["mean", "ci_low", "ci_high"]]


def _compare(base: _Side, cand: _Side, new: str, old: str, tolerance: float) -> list[VerdictRow]:
    before, after = _stats(base, old), _stats(cand, new)
    rows = []
    for metric, b in before.iterrows():
        metric = str(metric)
        if math.isnan(float(b["mean"])):
            raise nan_metric(old, metric)
        if metric not in after.index or pd.isna(after.at[metric, "mean"]):
            nan = math.nan
            rows.append(
                VerdictRow(new, old, metric, float(b["mean"]), nan, nan, nan, nan, tolerance,
                           "missing", "-")
            )  # fmt: skip
            continue
        found = _sampled(base, cand, new, old, metric)
        if found is None:
            found = _seed_means(base, cand, new, old, metric)
        b_mean, c_mean, d, low, high, basis, level = found
        if level == "none":
            status, low, high = "inconclusive", math.nan, math.nan
        else:
            status = gate_decision(d, low, high, tolerance)
        values = (b_mean, c_mean, d, low, high, tolerance, status, basis, level)
        rows.append(VerdictRow(new, old, metric, *values))
    return rows


Found: TypeAlias = tuple[float, float, float, float, float, str, str]


def _lend(base: _Side, cand: _Side, metric: str) -> Borrowed | None:
    """What a one-seed side of a win-rate borrows when the other side has one seed too: the
    stored (or measured) variance components' between-run variance."""
    if not metric.startswith("winrate."):
        return None
    found = _components(base, cand, metric.removeprefix("winrate."))
    if found is None:
        return None
    vc, source = found
    return lent_by_components(vc, vc.n_prompts, source)


def _sampled(base: _Side, cand: _Side, new: str, old: str, metric: str) -> Found | None:
    """(baseline, candidate, d, low, high, basis, seed level) of a win-rate from both sides'
    samples, or None when a side has none for it."""
    if not metric.startswith("winrate.") or base.samples is None or cand.samples is None:
        return None
    judge = metric.removeprefix("winrate.")
    lend = _lend(base, cand, metric)
    result = winrate_difference(base.samples, old, cand.samples, new, judge, lend=lend)
    if result is None:
        return None
    est_b, est_c, diff, paired = result
    basis = "paired samples" if paired else "samples"
    return est_b, est_c, diff.diff, diff.ci_low, diff.ci_high, basis, diff.seed_level


def _seed_means(base: _Side, cand: _Side, new: str, old: str, metric: str) -> Found:
    """(baseline, candidate, d, low, high, basis, seed level) from the tables' per-seed values
    (``harness.stats.paired.seed_means_difference``): each side's seeds, a one-seed side
    borrowing the other's (or the stored components'), and the level the per-seed values cannot
    show, which every seed of a variant repeats: a win-rate's prompt clusters (the variance
    components a table stored, ``VarianceComponents.prompt_var``); without them, and for a
    capability's items, each run's own interval as a normal half-width, the two sides' added
    (conservative: it holds the prompts' noise that the seeds hold too)."""
    values = [_per_seed(side, v, metric) for side, v in ((cand, new), (base, old))]
    found = _components(base, cand, metric.removeprefix("winrate."))
    n_prompts = int(values[0]["n"].dropna().median()) if values[0]["n"].notna().any() else 0
    if metric.startswith("winrate.") and found is not None and n_prompts > 0:
        prompt_var, basis = found[0].prompt_var(n_prompts), "seed means + variance components"
    else:  # the runs' own intervals (over prompts or items), as normal half-widths
        halves = [((v["ci_high"] - v["ci_low"]) / 2 / Z95).dropna() for v in values]
        prompt_var = sum(float((h**2).mean()) if not h.empty else 0.0 for h in halves)
        basis = "seed means + the runs' own intervals"
    lend = _lend(base, cand, metric)
    d, low, high, _, level = seed_means_difference(
        values[0]["value"].to_numpy()[None], values[1]["value"].to_numpy()[None], prompt_var, lend
    )
    c_mean, b_mean = (float(v["value"].mean()) for v in values)
    return b_mean, c_mean, float(d[0]), float(low[0]), float(high[0]), basis, level


def _per_seed(side: _Side, variant: str, metric: str) -> pd.DataFrame:
    rows = side.long[(side.long["variant"] == variant) & (side.long["metric"] == metric)]
    return rows[rows["value"].notna()]


# --- provenance -------------------------------------------------------------------------------

# run-table columns whose values must agree for two sides' numbers to be comparable
PROVENANCE = {
    "cpu": "CPU",
    "cpu_model": "CPU",
    "host": "host",
    "device_name": "device",
    "pkg.torch": "torch",
    "pkg.transformers": "transformers",
}


def suite_world(path: Path) -> object:
    """The ``world`` config of the ``suite.json`` beside a results dir or table (None if none)."""
    file = suite_json_path(path)
    try:
        dump = json.loads(file.read_text()) if file.exists() else {}
    except (OSError, ValueError):
        return None
    return dump.get("world") if isinstance(dump, dict) else None


def _values(runs: pd.DataFrame, column: str) -> list[str]:
    return sorted({str(v) for v in runs[column].dropna()})


def provenance_differences(
    base_runs: pd.DataFrame | None,
    cand_runs: pd.DataFrame | None,
    base_world: object,
    cand_world: object,
) -> list[str]:
    """What differs between how the two sides' runs were made, one phrase each (``host: a vs
    b``); empty when nothing known differs (a side without a run table is not compared)."""
    out = []
    if base_runs is not None and cand_runs is not None:
        for column, label in PROVENANCE.items():
            if column in base_runs and column in cand_runs:
                before, after = _values(base_runs, column), _values(cand_runs, column)
                if before and after and before != after:
                    short = 16 if column == "suite_hash" else 60
                    b, a = (", ".join(v[:short] for v in vs) for vs in (before, after))
                    out.append(f"{label} {b} vs {a}")
    if base_world is not None and cand_world is not None and base_world != cand_world:
        out.append("world config")
    return out

"""Comparisons of variants from every judged sample: ``comparisons.parquet``, the leaderboard's
statistics (hierarchical intervals, letters, rank intervals, power) and the gate's win-rate
differences.

Input: a results dir's ``samples.parquet`` and ``reference_samples.parquet``
(``harness.report.samples``), reduced per judge to one row per (variant, seed, prompt) by
``harness.stats.estimates.prompt_table`` (``win``: the prompt's win-rate over its k x k pairs with
the reference's samples; ``reward``: its mean score). The statistics are
``harness.stats.paired``'s: a hierarchical bootstrap over seeds, then clusters, then prompts,
paired on shared prompts and seeds; this module only chooses what to compute and lays it out.

``comparisons.parquet``, one row per judge x metric (``win``, ``reward``) x pair of variants::

    judge, metric, a, b, mean_a, mean_b, diff, ci_low, ci_high, p_value, p_holm, separated, n,
    seed_level, p_method

``diff = mean_a - mean_b`` with its 95% interval; ``p_holm`` is Holm-adjusted over the family of
every pair of one judge and metric; ``separated = p_holm < 0.05``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.core.files import write_atomic_with
from harness.report.samples import REFERENCE_FILE, SAMPLES_FILE, long_scores
from harness.stats.estimates import Estimate, min_detectable_difference, needed_for, prompt_table
from harness.stats.paired import (
    P_METHOD,
    Borrowed,
    Comparison,
    compact_letters,
    compare_all,
    hierarchical_bootstrap,
    paired_difference,
    rank_intervals,
)

N_BOOT = 1000
BOOT_SEED = 0
POWER_DELTA = 0.03  # the difference the power line asks about (win-rate)
COMPARISONS_FILE = "comparisons.parquet"
METRICS = ("win", "reward")
COMPARISON_COLUMNS = [
    "judge",
    "metric",
    "a",
    "b",
    "mean_a",
    "mean_b",
    "diff",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "separated",
    "n",
    "seed_level",  # where the between-run variance came from (Comparison.seed_level)
    "p_method",  # how p_value was computed: a table made another way is recomputed, not reused
]


@dataclass(frozen=True)
class SampleTables:
    """Every judged sample of a suite, scores as rows (``judge, score``)."""

    runs: pd.DataFrame  # suite, run_id, method, variant, seed, prompt_id, cluster, sample, ...
    reference: pd.DataFrame  # prompt_id, cluster, sample, judge, score
    _prompts: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False, compare=False)

    @property
    def judges(self) -> list[str]:
        """Judges that scored both the runs' and the reference's samples, in column order."""
        found = set(self.reference["judge"])
        return [j for j in dict.fromkeys(self.runs["judge"]) if j in found]

    def prompts(self, judge: str) -> pd.DataFrame:
        """``harness.stats.estimates.prompt_table`` of ``judge``: variant, seed, cluster,
        prompt_id, win, reward (computed once; not to be modified)."""
        if judge not in self._prompts:
            self._prompts[judge] = prompt_table(self.runs, self.reference, judge)
        return self._prompts[judge]


def sample_files(path: Path) -> tuple[Path, Path]:
    """(samples, reference samples) of a results dir (``samples.parquet``,
    ``reference_samples.parquet``), or beside a table file ``<stem>.parquet``
    (``<stem>.samples.parquet``, ``<stem>.reference_samples.parquet``: a baseline that ships its
    samples)."""
    path = Path(path)
    if path.is_dir():
        return path / SAMPLES_FILE, path / REFERENCE_FILE
    stem = path.name.split(".")[0]
    return path.with_name(f"{stem}.{SAMPLES_FILE}"), path.with_name(f"{stem}.{REFERENCE_FILE}")


def load_samples(results_dir: Path) -> SampleTables | None:
    """The judged samples of a results dir (or beside a table file: ``sample_files``), or None
    when it has no samples file with rows and scores, or no reference samples (results written
    before samples were kept, or a suite whose reference side was not saved)."""
    files = list(sample_files(results_dir))
    if not all(f.is_file() for f in files):
        return None
    runs, reference = (pd.read_parquet(f) for f in files)
    scored = [c for c in runs.columns if c.startswith("score.")]
    if runs.empty or reference.empty or not scored:
        return None
    tables = SampleTables(long_scores(runs).dropna(subset=["score"]), long_scores(reference))
    return tables if tables.judges else None


# --- comparisons.parquet ---------------------------------------------------------------------


def comparisons(samples: SampleTables, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> pd.DataFrame:
    """Every pair of variants, per judge and metric (``harness.stats.paired.compare_all``), as the
    rows of ``comparisons.parquet``."""
    frames = []
    for judge in samples.judges:
        tbl = samples.prompts(judge)
        for metric in METRICS:
            frame = compare_all(tbl, metric, n_boot, seed).drop(columns="metric")
            frames.append(frame.assign(judge=judge, metric=metric, p_method=P_METHOD))
    if not frames:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    return pd.concat(frames, ignore_index=True)[COMPARISON_COLUMNS]


def write_comparisons(results_dir: Path, samples: SampleTables | None = None) -> dict[str, Path]:
    """Write ``comparisons.parquet`` (atomically) from ``samples``, else the samples on disk;
    return it by name. Without samples nothing is written, and an older ``comparisons.parquet``
    (of samples that are gone) is removed."""
    path = Path(results_dir) / COMPARISONS_FILE
    samples = samples or load_samples(Path(results_dir))
    if samples is None:
        path.unlink(missing_ok=True)
        return {}
    table = comparisons(samples)
    write_atomic_with(path, lambda tmp: table.to_parquet(tmp, index=False))
    return {COMPARISONS_FILE: path}


def read_comparisons(results_dir: Path) -> pd.DataFrame | None:
    """``comparisons.parquet`` when it is there and not older than the samples it was computed
    from (as ``write_comparisons`` leaves it), else None."""
    path = Path(results_dir) / COMPARISONS_FILE
    sources = [Path(results_dir) / name for name in (SAMPLES_FILE, REFERENCE_FILE)]
    if not path.is_file() or not all(f.is_file() for f in sources):
        return None
    if path.stat().st_mtime < max(f.stat().st_mtime for f in sources):
        return None
    table = pd.read_parquet(path)
    return table if list(table.columns) == COMPARISON_COLUMNS else None


# --- the leaderboard's statistics ------------------------------------------------------------


@dataclass(frozen=True)
class Power:
    """The primary judge's win-rate: the smallest difference of two variants this design detects
    at 80% power, for one planned comparison (5% level) and at the level the leaderboard
    separates at (Holm over its ``pairs``: its first step, 5% / pairs, bounds it); and the seeds
    (at its prompts) or prompts (at its seeds) that would detect ``delta`` in one planned
    comparison; None where no practical number would."""

    mdd: float
    delta: float
    seeds: int | None
    prompts: int | None
    mdd_family: float = math.nan
    pairs: int = 1
    max_seeds: int = 100

    def sentence(self, judge: str | None) -> str:
        """The leaderboard's power line, of ``judge``'s win-rate."""
        head = f"the smallest difference this run detects at 80% power: {self.mdd:.3f}"
        head += f" ({judge} win-rate) in one planned comparison"
        if self.pairs > 1:
            head += (
                f", {self.mdd_family:.3f} at the level the table separates at (Holm over"
                f" {self.pairs} pairs: at most 5% / {self.pairs} for the first)"
            )
        seeds = f"more than {self.max_seeds}" if self.seeds is None else str(self.seeds)
        need = f"a difference of {self.delta} would need {seeds} seeds at these prompts"
        if self.prompts is None:
            return f"{head}; {need}, and no number of prompts at these seeds would do"
        return f"{head}; {need} or {self.prompts:,} prompts at these seeds"


@dataclass(frozen=True, eq=False)  # compared by identity: it holds frames
class SampleSummary:
    """What the leaderboard shows from the samples (a summary frame's ``attrs["samples"]``)."""

    estimates: pd.DataFrame  # variant, judge, metric, value, ci_low, ci_high, n
    comparisons: pd.DataFrame  # as comparisons.parquet
    groups: dict[str, str]  # variant -> its letters (primary judge's win-rate)
    ranks: dict[str, tuple[int, int]]  # variant -> (best, worst) rank, 95%
    power: Power | None
    n_boot: int
    judge: str  # the judge of groups, ranks and power: the primary one when it has samples

    group_rule = (
        "two variants share a letter exactly when their paired comparison does not separate"
        " them (Holm-adjusted p < 0.05 over every pair of variants; a variant may hold several"
        " letters; A is the best variant's)"
    )
    rank_rule = (
        "the 95% range of a variant's rank over the bootstrap replicates (the same seeds, clusters"
        " and prompts drawn for every variant); marginal: each variant's on its own, not all"
        " variants' at once"
    )

    def pairs(self, judge: str | None, metric: str) -> pd.DataFrame:
        """The comparisons of one judge and metric."""
        rows = self.comparisons
        return rows[(rows["judge"] == judge) & (rows["metric"] == metric)]

    def columns(self, variants: list[str], judges: list[str]) -> dict[str, list]:
        """The leaderboard's columns for ``variants`` (NaN / "-" / 0 where a variant has no
        samples): ``winrate.<judge>`` and ``reward.<judge>`` with ``.low``/``.high``, ``group``,
        ``rank_best``, ``rank_worst``."""
        est = self.estimates.set_index(["variant", "judge", "metric"])
        out: dict[str, list] = {}
        for judge in judges:
            for metric, key in (("win", f"winrate.{judge}"), ("reward", f"reward.{judge}")):
                for column, suffix in (("value", ""), ("ci_low", ".low"), ("ci_high", ".high")):
                    out[f"{key}{suffix}"] = [
                        float(est.at[(v, judge, metric), column])
                        if (v, judge, metric) in est.index
                        else math.nan
                        for v in variants
                    ]
        out["group"] = [self.groups.get(v, "-") for v in variants]
        out["rank_best"] = [self.ranks.get(v, (0, 0))[0] for v in variants]
        out["rank_worst"] = [self.ranks.get(v, (0, 0))[1] for v in variants]
        return out

    def notes(self) -> list[str]:
        """The leaderboard's notes on the statistics of the samples, one bullet each."""
        out = [
            "Win-rate: per prompt (wins + ties/2) over the k x k pairs of its samples and the"
            " reference policy's, then the mean over seeds, clusters and prompts, with a 95%"
            " hierarchical bootstrap interval (seeds, then clusters, then prompts within them;"
            f" {self.n_boot} resamples); reward: the judge's mean score of the samples",
            f"Group ({self.judge} win-rate): {self.group_rule}",
            f"Rank interval ({self.judge} win-rate): {self.rank_rule}",
        ]
        if self.power is not None:
            out.append(f"Power: {self.power.sentence(self.judge)}")
        return out


def estimates(samples: SampleTables, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> pd.DataFrame:
    """Per variant, judge and metric the mean with its hierarchical-bootstrap 95% interval; a
    win-rate's interval is kept within [0, 1] (the seed level's t-scaled deviations can reach
    past the bounds of a proportion near them)."""
    rows = []
    for judge in samples.judges:
        tbl = samples.prompts(judge)
        for variant, units in tbl.groupby("variant", sort=False):
            for metric in METRICS:
                est = hierarchical_bootstrap(units, metric, n_boot, seed)
                low, high = est.ci_low, est.ci_high
                if metric == "win":
                    low, high = max(low, 0.0), min(high, 1.0)
                rows.append((variant, judge, metric, est.value, low, high, est.n))
    columns = ["variant", "judge", "metric", "value", "ci_low", "ci_high", "n"]
    return pd.DataFrame(rows, columns=columns)


def power(tbl: pd.DataFrame, delta: float = POWER_DELTA) -> Power | None:
    """``Power`` of the win-rate in a prompt table; None when it cannot be estimated (one seed)."""
    n_variants = tbl["variant"].nunique()
    pairs = max(n_variants * (n_variants - 1) // 2, 1)
    try:
        mdd = min_detectable_difference(tbl, "win")
        family = min_detectable_difference(tbl, "win", alpha=0.05 / pairs)
        needed = needed_for(tbl, "win", delta)
    except ValueError:
        return None
    return Power(mdd, delta, needed["seeds"], needed["prompts"], family, pairs)


def sample_summary(
    samples: SampleTables,
    primary: str | None,
    table: pd.DataFrame | None = None,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> SampleSummary:
    """Estimates, comparisons (``table`` when given, as ``read_comparisons`` reads it), groups,
    rank intervals and power; groups, ranks and power are the ``primary`` judge's win-rate (the
    first judge when it has no samples)."""
    judge = primary if primary in samples.judges else samples.judges[0]
    table = comparisons(samples, n_boot, seed) if table is None else table
    est = estimates(samples, n_boot, seed)
    tbl = samples.prompts(judge)
    mine = table[(table["judge"] == judge) & (table["metric"] == "win")]
    wins = est[(est["judge"] == judge) & (est["metric"] == "win")]
    groups = compact_letters(dict(zip(wins["variant"], wins["value"], strict=True)), mine)
    # a variant compared without any between-run variance (one seed, nothing to borrow) gets
    # no letter: a letter is a 95% claim about other training runs
    unknown = set(mine.loc[mine["seed_level"] == "none", ["a", "b"]].to_numpy().ravel())
    groups = {v: "-" if v in unknown else letters for v, letters in groups.items()}
    ranks = rank_intervals(tbl, "win", n_boot, seed)
    return SampleSummary(est, table, groups, ranks, power(tbl), n_boot, judge)


# --- the gate ---------------------------------------------------------------------------------


def _same_prompts(base: SampleTables, cand: SampleTables, judge: str) -> bool:
    """Whether both sides' references are the same samples (hence the same prompts)."""
    columns = ["prompt_id", "cluster", "sample", "score"]
    sides = [s.reference[s.reference["judge"] == judge][columns] for s in (base, cand)]
    a, b = (s.sort_values(columns[:3], ignore_index=True) for s in sides)
    return a.shape == b.shape and bool((a.astype(str) == b.astype(str)).all().all())


def _unpaired(
    units_b: pd.DataFrame, units_c: pd.DataFrame, n_boot: int, seed: int
) -> tuple[float, float, Estimate]:
    """(baseline, candidate, candidate - baseline) from two independent hierarchical bootstraps
    (no shared prompts): the half-widths of the two sides added in quadrature, each on its own
    side (MOVER: Zou & Donner 2008)."""
    b = hierarchical_bootstrap(units_b, "win", n_boot, seed)
    c = hierarchical_bootstrap(units_c, "win", n_boot, seed + 1)
    d = c.value - b.value
    down = float(np.hypot(c.value - c.ci_low, b.ci_high - b.value))
    up = float(np.hypot(c.ci_high - c.value, b.value - b.ci_low))
    return b.value, c.value, Estimate(d, d - down, d + up, min(b.n, c.n))


def winrate_difference(
    base: SampleTables,
    old: str,
    cand: SampleTables,
    new: str,
    judge: str,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
    lend: Borrowed | None = None,
) -> tuple[float, float, Comparison, bool] | None:
    """(baseline win-rate, candidate win-rate, candidate - baseline (``Comparison``: its 95%
    interval, p-value and where its between-run variance came from), paired) of ``judge``; None
    when a side has no samples of that variant and judge.

    Paired (``harness.stats.paired.paired_difference``: on prompts, and on seeds when both have the
    same seed numbers; a one-seed side borrows the other's between-run variance, else ``lend``'s)
    when both sides are one results dir, or their reference samples are the same; else two
    independent bootstraps (``_unpaired``)."""
    if judge not in base.judges or judge not in cand.judges:
        return None
    tbl_b = base.prompts(judge)
    tbl_c = tbl_b if cand is base else cand.prompts(judge)
    units_b, units_c = tbl_b[tbl_b["variant"] == old], tbl_c[tbl_c["variant"] == new]
    if units_b.empty or units_c.empty:
        return None
    if cand is base or _same_prompts(base, cand, judge):
        names = ("the candidate", "the baseline")
        c = paired_difference(units_c, units_b, "win", n_boot, seed, lend, names)
        return c.b, c.a, c, True
    b, c_, diff = _unpaired(units_b, units_c, n_boot, seed)
    alone = min(units_b["seed"].nunique(), units_c["seed"].nunique()) < 2
    level = "none" if alone else "measured"  # two bootstraps: nothing is lent between them
    c = Comparison(c_, b, diff.value, diff.ci_low, diff.ci_high, math.nan, diff.n, level)
    return b, c_, c, False

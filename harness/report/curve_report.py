"""The leaderboard's curves section, from the checkpoint tables (``harness.report.curves``): reward
against sqrt(KL) with the Gao et al. fits, each variant's peak and final proxy-gold gap, the
over-optimisation test, and the compute-matched table. Statistics from ``harness.stats.frontier``,
plots from ``harness.report.curve_plots``.

**The comparable scale.** Judges score on different scales (a reward model's logit, the gold
reward's points), so every judge's score is standardised on the base policy's answers: ``z = (score
- mean) / sd`` over every run's round-0 answers (the base policy, before any training, on the
checkpoint prompts), pooled over runs. A z of 0.5 is half a base-policy standard deviation above
the base policy, under that judge; the proxy-gold gap is in those units.

**The judges' roles.** ``truth``: gold when the suite has it (else the primary judge); ``proxy``:
the training reward model; ``select``: the judge that picks a checkpoint where one is picked (the
compute-matched table): the first judge that is neither (held-out in the tiny world), never gold
when another exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.core.judges import GOLD, PROXY
from harness.report.curves import load_curves
from harness.report.results import BON_FILE
from harness.stats.frontier import (
    FORMS,
    GaoFit,
    PeakDrop,
    band,
    best_within,
    gao_fit,
    peak_drop,
    sqrt_kl,
    standardise,
)
from harness.stats.paired import hierarchical_bootstrap


@dataclass(frozen=True)
class Roles:
    truth: str
    proxy: str | None
    select: str

    @classmethod
    def of(cls, judges: list[str], primary: str | None) -> Roles:
        truth = GOLD if GOLD in judges else (primary or judges[0])
        proxy = PROXY if PROXY in judges and truth != PROXY else None
        others = [j for j in judges if j not in (truth, proxy)]
        return cls(truth, proxy, others[0] if others else truth)


@dataclass
class CurveReport:
    """Everything the curves section shows, as frames (one row per variant unless said)."""

    roles: Roles
    judges: list[str]
    per_seed: pd.DataFrame  # variant, seed, round: sqrt_kl, flops, z.<judge>, mean.<judge>
    points: pd.DataFrame  # variant, round: means over seeds, with .low/.high bands
    fits: pd.DataFrame  # variant, judge, form, alpha, beta, r2, n
    peaks: pd.DataFrame  # variant, peak_round, peak_z, peak_raw, peak_kl, final_*, gap
    tests: dict[str, PeakDrop]
    matched: pd.DataFrame  # variant, round, flops, select z, truth raw with interval
    budget: float
    notes: list[str] = field(default_factory=list)


def _z_answers(answers: pd.DataFrame, judges: list[str]) -> pd.DataFrame:
    base = answers[answers["round"] == 0]
    out = answers.copy()
    for j in judges:
        out[f"z.{j}"] = standardise(out[f"score.{j}"], base[f"score.{j}"])
    return out


def _per_seed(curves: pd.DataFrame, answers: pd.DataFrame, judges: list[str]) -> pd.DataFrame:
    keys = ["variant", "seed", "round"]
    columns = [f"z.{j}" for j in judges] + [f"score.{j}" for j in judges]
    means = answers.groupby(keys, sort=False)[columns].mean()
    means.columns = [c.replace("score.", "mean.") for c in means.columns]
    spread = answers.groupby(keys, sort=False)[[f"z.{j}" for j in judges]]
    se = spread.std() / np.sqrt(spread.count())  # one seed's band, over its answers
    means[[f"se.{j}" for j in judges]] = se.to_numpy()
    kept = curves.set_index(keys)[["method", "kl", "flops"]]
    out = means.join(kept, how="inner").reset_index()
    out["sqrt_kl"] = sqrt_kl(out["kl"])
    return out


def _points(per_seed: pd.DataFrame, judges: list[str]) -> pd.DataFrame:
    rows = []
    for (variant, round_), group in per_seed.groupby(["variant", "round"], sort=False):
        row: dict[str, Any] = {"variant": variant, "round": round_, "seeds": len(group)}
        row["sqrt_kl"], row["kl"] = group["sqrt_kl"].mean(), group["kl"].mean()
        row["flops"] = group["flops"].mean()
        for j in judges:
            se = float(group[f"se.{j}"].iloc[0]) if len(group) == 1 else math.nan
            mean, low, high = band(group[f"z.{j}"], se)
            row |= {f"z.{j}": mean, f"z.{j}.low": low, f"z.{j}.high": high}
            row[f"mean.{j}"] = group[f"mean.{j}"].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def _fits(per_seed: pd.DataFrame, judges: list[str]) -> pd.DataFrame:
    rows = []
    for variant, group in per_seed.groupby("variant", sort=False):
        form = "bon" if group["method"].iloc[0] == "best_of_n" else "rl"
        for j in judges:
            fit: GaoFit = gao_fit(group["sqrt_kl"], group[f"z.{j}"], form)  # type: ignore[arg-type]
            rows.append({"variant": variant, "judge": j, "form": form, **_fit_row(fit)})
    return pd.DataFrame(rows)


def _fit_row(fit: GaoFit) -> dict[str, Any]:
    return {"alpha": fit.alpha, "beta": fit.beta, "r2": fit.r2, "n": fit.n}


def _peaks(points: pd.DataFrame, roles: Roles) -> pd.DataFrame:
    rows = []
    t, p = roles.truth, roles.proxy
    for variant, group in points.groupby("variant", sort=False):
        peak, last = group.loc[group[f"z.{t}"].idxmax()], group.loc[group["round"].idxmax()]
        row = {"variant": variant, "peak_round": int(peak["round"]), "peak_z": peak[f"z.{t}"]}
        row |= {"peak_raw": peak[f"mean.{t}"], "peak_kl": peak["kl"]}
        row |= {"last_round": int(last["round"]), "final_z": last[f"z.{t}"], "final_kl": last["kl"]}
        row["final_proxy_z"] = last[f"z.{p}"] if p else math.nan
        row["gap"] = row["final_proxy_z"] - row["final_z"]
        rows.append(row)
    return pd.DataFrame(rows)


def _matched(
    points: pd.DataFrame, answers: pd.DataFrame, roles: Roles, budget: float | None
) -> tuple[pd.DataFrame, float]:
    totals = points.loc[points.groupby("variant", sort=False)["round"].idxmax(), "flops"]
    if not np.isfinite(totals).all() or totals.empty:
        return pd.DataFrame(), math.nan
    budget = float(totals.min()) if budget is None else budget
    best = best_within(points, budget, f"z.{roles.select}")
    rows = []
    for _, row in best.iterrows():
        at = answers[(answers["variant"] == row["variant"]) & (answers["round"] == row["round"])]
        units = at.groupby(["seed", "cluster", "prompt_id"], as_index=False)[f"score.{roles.truth}"]
        est = hierarchical_bootstrap(units.mean(), f"score.{roles.truth}")
        rows.append(
            {
                "variant": row["variant"],
                "round": int(row["round"]),
                "flops": row["flops"],
                "kl": row["kl"],
                "select": row[f"z.{roles.select}"],
                "truth": est.value,
                "truth.low": est.ci_low,
                "truth.high": est.ci_high,
                "truth_z": row[f"z.{roles.truth}"],
            }
        )
    return pd.DataFrame(rows), budget


def load_report(results_dir: Path, judges: list[str], primary: str | None) -> CurveReport | None:
    """``curve_report`` of a results directory's checkpoint tables, with its best-of-n curves
    (``bon_curve.parquet``) when it has some; None when it has no checkpoints."""
    loaded = load_curves(results_dir)
    if loaded is None:
        return None
    bon_file = Path(results_dir) / BON_FILE
    bon = pd.read_parquet(bon_file) if bon_file.exists() else None
    return curve_report(*loaded, judges, primary, bon=bon)


def _bon_per_seed(bon: pd.DataFrame, base: pd.DataFrame, judges: list[str]) -> pd.DataFrame:
    """Best-of-n curves (``harness.report.tables.bon_table``) as per-seed points: ``round`` is n,
    ``kl`` its upper bound; z from best-of-1 (the base policy's mean on the eval prompts) in
    SDs of the base policy's checkpoint answers ``base``."""
    rows = []
    for (variant, seed, n), group in bon.groupby(["variant", "seed", "n"], sort=False):
        values = group.set_index("metric")["value"]
        row: dict[str, Any] = {"variant": variant, "seed": seed, "round": n}
        row |= {f"se.{j}": math.nan for j in judges}  # no answers kept: no band for one seed
        row |= {"method": group["method"].iloc[0], "kl": group["kl_bound"].iloc[0]}
        for j in judges:
            first = bon[(bon["variant"] == variant) & (bon["seed"] == seed) & (bon["n"] == 1)]
            at_one = first.set_index("metric")["value"].get(f"reward.{j}", math.nan)
            sd = float(base[f"score.{j}"].std(ddof=1))
            row[f"mean.{j}"] = values.get(f"reward.{j}", math.nan)
            row[f"z.{j}"] = (row[f"mean.{j}"] - at_one) / sd
        rows.append(row)
    out = pd.DataFrame(rows)
    out["sqrt_kl"], out["flops"] = sqrt_kl(out["kl"]), math.nan
    return out


def curve_report(
    curves: pd.DataFrame,
    answers: pd.DataFrame,
    judges: list[str],
    primary: str | None,
    budget: float | None = None,
    bon: pd.DataFrame | None = None,
) -> CurveReport:
    """The curves section's numbers from the two checkpoint tables (and the best-of-n curves
    ``bon``, fitted with their own form); ``budget`` in FLOPs for the compute-matched table
    (default: the smallest trained variant's total, the mean over its seeds of its last
    checkpoint's FLOPs)."""
    judges = [j for j in judges if f"score.{j}" in answers.columns]
    roles = Roles.of(judges, primary)
    scored = _z_answers(answers, judges)
    per_seed = _per_seed(curves, scored, judges)
    points = _points(per_seed, judges)
    tests = {}
    if roles.proxy is not None:
        for variant, group in scored.groupby("variant", sort=False):
            if group["round"].nunique() >= 3:
                tests[str(variant)] = peak_drop(group, f"z.{roles.truth}", f"z.{roles.proxy}")
    matched, budget = _matched(points, scored, roles, budget)
    peaks = _peaks(points, roles)
    if bon is not None and not bon.empty:
        bon_seeds = _bon_per_seed(bon, answers[answers["round"] == 0], judges)
        per_seed = pd.concat([per_seed, bon_seeds], ignore_index=True)
        points = pd.concat([points, _points(bon_seeds, judges)], ignore_index=True)
    return CurveReport(
        roles=roles,
        judges=judges,
        per_seed=per_seed,
        points=points,
        fits=_fits(per_seed, judges),
        peaks=peaks,
        tests=tests,
        matched=matched,
        budget=budget,
    )


# --------------------------------------------------------------------------- the section's tables


@dataclass(frozen=True)
class Table:
    """One table of the section: a heading, a paragraph (markdown inline code allowed), headers,
    rows of formatted cells, and which columns hold text."""

    title: str
    text: str
    headers: list[str]
    rows: list[list[str]]
    text_columns: frozenset[int] = frozenset({0})


def _f(value: float, digits: int = 3, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    value = round(value, digits) + 0.0  # no "-0.000"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _tera(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value / 1e12:.3g}"


def _diff(c: Any) -> str:
    return f"{_f(c.diff, sign=True)} [{_f(c.ci_low, sign=True)}, {_f(c.ci_high, sign=True)}]"


def _fit_table(report: CurveReport) -> Table:
    shown = [j for j in (report.roles.truth, report.roles.proxy) if j]
    headers = ["variant", "form"]
    for j in shown:
        headers += [f"{j} α", f"{j} β", f"{j} R²"]
    rows = []
    for variant, group in report.fits.groupby("variant", sort=False):
        by_judge = group.set_index("judge")
        cells = [str(variant), FORMS[str(group["form"].iloc[0])]]
        for j in shown:
            fit = by_judge.loc[j]
            cells += [_f(fit["alpha"]), _f(fit["beta"]), _f(fit["r2"], 2)]
        rows.append([*cells, str(int(group["n"].iloc[0]))])
    text = (
        "Gao et al. 2022's forms fitted by least squares through the origin to every (seed,"
        " checkpoint) point, reward in z (standard deviations of the base policy's answers, from"
        " their mean, per judge) against d = √KL; R² against a flat line (below 0: worse than"
        " one). `harness/stats/frontier.py`."
    )
    return Table("Fits of reward against √KL", text, [*headers, "points"], rows)


def _peak_table(report: CurveReport) -> Table:
    t, p = report.roles.truth, report.roles.proxy or "proxy"
    headers = ["variant", f"peak round ({t})", f"peak {t} z", f"peak {t} mean", "KL at peak"]
    headers += ["last round", f"final {t} z", f"final {p} z", f"final gap {p} − {t} (z)"]
    rows = [
        [
            str(r["variant"]),
            str(r["peak_round"]),
            _f(r["peak_z"]),
            _f(r["peak_raw"]),
            _f(r["peak_kl"]),
            str(r["last_round"]),
            _f(r["final_z"]),
            _f(r["final_proxy_z"]),
            _f(r["gap"], sign=True),
        ]
        for _, r in report.peaks.iterrows()
    ]
    text = (
        f"Means over seeds per checkpoint. The gap is how far the proxy's gain overstates"
        f" {t}'s at the last checkpoint, both in z on the base policy's answers, so the two"
        " judges' scales are comparable."
    )
    return Table(f"Peak {t} reward and the final proxy gap", text, headers, rows)


def _test_table(report: CurveReport) -> Table:
    t, p = report.roles.truth, report.roles.proxy
    headers = ["variant", f"{t} peak round", "last round", f"{t} last − peak (z)"]
    headers += [f"{p} last − peak (z)", "over-optimised"]
    rows = []
    for variant, test in report.tests.items():
        verdict = "yes" if test.overoptimised else "no"
        rows.append([variant, str(test.peak_round), str(test.last_round), _diff(test.drop),
                     _diff(test.proxy_rise), verdict])  # fmt: skip
    text = (
        f"The peak round is chosen on half of the checkpoint prompts (alternate ids), and the"
        f" differences are measured on the other half, paired by seed and prompt, with 95%"
        f" hierarchical-bootstrap intervals (seeds, clusters, prompts: `harness/stats/paired.py`),"
        f" so the peak's selection does not inflate the drop. Over-optimised: {p} higher at the"
        f" last checkpoint than at {t}'s peak while {t} is lower, its interval below 0."
    )
    return Table("Over-optimisation test", text, headers, rows, frozenset({0, 5}))


def _matched_table(report: CurveReport) -> Table | None:
    if report.matched.empty:
        return None
    s, t = report.roles.select, report.roles.truth
    headers = ["variant", "checkpoint round", "TFLOPs", "KL", f"{s} z (chose it)", f"{t} mean"]
    rows = [
        [
            str(r["variant"]),
            str(r["round"]),
            _tera(r["flops"]),
            _f(r["kl"]),
            _f(r["select"]),
            f"{_f(r['truth'])} [{_f(r['truth.low'])}, {_f(r['truth.high'])}]",
        ]
        for _, r in report.matched.sort_values("truth", ascending=False).iterrows()
    ]
    text = (
        f"Each variant's checkpoint with the best {s} reward among those whose training FLOPs"
        f" (mean over seeds) are within {_tera(report.budget)} TFLOPs, the smallest variant's"
        f" total; reported under {t} (its mean score, 95% hierarchical-bootstrap interval over"
        f" seeds and prompts), which never chose it."
    )
    return Table("Compute-matched comparison", text, headers, rows)


def tables(report: CurveReport) -> list[Table]:
    """The section's tables, in order."""
    out = [_fit_table(report), _peak_table(report)]
    if report.tests:
        out.append(_test_table(report))
    matched = _matched_table(report)
    return out + ([matched] if matched is not None else [])

"""The curves section's plots (``harness.report.curve_report``): per variant, the proxy's and the
true judge's standardised reward against sqrt(KL) with their 95% bands and fitted Gao et al. forms,
and the true judge's reward against training FLOPs. PNGs as base64 text, drawn on matplotlib's Agg
canvas through ``Figure`` as ``harness.report.plots``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from harness.report.curve_report import CurveReport
from harness.report.plots import MARKERS, _png, plain
from harness.stats.frontier import GaoFit

COLORS = {"truth": "tab:green", "proxy": "tab:red", "select": "tab:blue"}


def _line(ax: Axes, x: np.ndarray, points: pd.DataFrame, key: str, label: str, color: str) -> None:
    order = np.argsort(x)
    mean = points[key].to_numpy(float)[order]
    low, high = (
        points[f"{key}.low"].to_numpy(float)[order],
        points[f"{key}.high"].to_numpy(float)[order],
    )
    ax.plot(x[order], mean, marker="o", markersize=3, color=color, label=label)
    ax.fill_between(x[order], low, high, color=color, alpha=0.2, linewidth=0)


def _fit_curve(
    ax: Axes, report: CurveReport, variant: str, judge: str, color: str, reach: float
) -> None:
    fits = report.fits
    row = fits[(fits["variant"] == variant) & (fits["judge"] == judge)]
    if row.empty or not np.isfinite(row["alpha"].iloc[0]):
        return
    r = row.iloc[0]
    fit = GaoFit(r["form"], r["alpha"], r["beta"], r["r2"], int(r["n"]))
    d = np.linspace(0, reach, 100)
    label = f"fit ({judge}): α={fit.alpha:.2f}, β={fit.beta:.2f}, R²={fit.r2:.2f}"
    ax.plot(d, fit.predict(d), linestyle="--", color=color, linewidth=1, label=label)


def frontier_plot(report: CurveReport) -> Figure:
    """One panel per variant: proxy and true-judge z against sqrt(KL), bands over seeds, fits."""
    variants = list(dict.fromkeys(report.points["variant"]))
    cols = min(3, len(variants))
    rows = math.ceil(len(variants) / cols)
    fig = Figure(figsize=(4.6 * cols, 3.8 * rows))
    roles = report.roles
    shown = [(roles.proxy, "proxy"), (roles.truth, "truth")]
    for i, variant in enumerate(variants):
        ax = fig.add_subplot(rows, cols, i + 1)
        pts = report.points[report.points["variant"] == variant]
        x = pts["sqrt_kl"].to_numpy(float)
        reach = float(np.nanmax(x)) if len(x) else 1.0
        for judge, role in shown:
            if judge is None:
                continue
            _line(ax, x, pts, f"z.{judge}", judge, COLORS[role])
            _fit_curve(ax, report, variant, judge, COLORS[role], reach)
        ax.axhline(0, color="grey", linestyle=":", linewidth=1)
        ax.set_title(variant)
        ax.set_xlabel("√KL(policy ‖ reference)")
        ax.set_ylabel("reward, z on the base policy")
        ax.legend(fontsize="x-small")
    fig.suptitle("Reward against √KL per variant: proxy and true judge")
    fig.tight_layout()
    return fig


def flops_plot(report: CurveReport) -> Figure:
    """The true judge's z against training FLOPs, one line per variant with its band."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    key = f"z.{report.roles.truth}"
    for i, (variant, pts) in enumerate(report.points.groupby("variant", sort=False)):
        pts = pts[(pts["round"] > 0) & pts["flops"].notna()]  # round 0 spent none: off a log axis
        if pts.empty:  # best-of-n: no training
            continue
        x = pts["flops"].to_numpy(float)
        ax.plot(x, pts[key], marker=MARKERS[i % 10], markersize=4, label=str(variant))
        ax.fill_between(x, pts[f"{key}.low"], pts[f"{key}.high"], alpha=0.15, linewidth=0)
    if np.isfinite(report.budget):
        ax.axvline(report.budget, color="grey", linestyle="--", linewidth=1, label="FLOP budget")
    ax.set_xscale("log")
    ax.axhline(0, color="grey", linestyle=":", linewidth=1)
    ax.set_title(plain(f"{report.roles.truth} reward against training FLOPs"))
    ax.set_xlabel("training FLOPs (estimate, harness.core.ledger)")
    ax.set_ylabel(f"{report.roles.truth} reward, z on the base policy")
    ax.legend(fontsize="small")
    return fig


def curve_plots(report: CurveReport) -> list[tuple[str, str]]:
    """(caption, base64 PNG) of the curves plots; the FLOPs plot only where FLOPs are known."""
    roles = report.roles
    out = [
        (
            f"{roles.proxy or '-'} (red) and {roles.truth} (green) reward against √KL per variant:"
            " each judge's score standardised on the base policy's answers (z), mean over seeds"
            " with its 95% band; dashed: the fitted Gao et al. form (RL: d(α − β·log d);"
            " best-of-n: d(α − β·d), its points at n = 1, 2, 4... placed at the KL's upper"
            " bound log n − (n − 1)/n), R² in the legend.",
            _png(frontier_plot(report)),
        )
    ]
    if report.points["flops"].notna().any():
        out.append(
            (
                f"{roles.truth} reward (z) against the training FLOPs spent by each checkpoint,"
                " mean over seeds with its 95% band (dashed: the compute-matched budget).",
                _png(flops_plot(report)),
            )
        )
    return out

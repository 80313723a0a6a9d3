"""The leaderboard's plots, drawn from its ``Summary`` (``harness.report.leaderboard.summarise``):
win-rate per variant and judge, win-rate against KL per seed, capability delta per task, and
(when the judged samples are there) the pairwise matrix of win-rate differences. Each is a PNG as
base64 text, for an ``<img>`` of the self-contained HTML page.

Drawn on matplotlib's Agg canvas through ``Figure``: no pyplot state, no display.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.core.rules import REGRESSION_MARK
from harness.report.summary import Summary

MARKERS = "osD^vPX*<>"


def plain(text: object) -> str:
    """``text`` drawn as it is: every ``$`` escaped, so that a name taken from the data (a
    variant, a judge, a task) is never read as mathtext markup (``$\\frac{a}{b}$``, ``a$b``)."""
    return str(text).replace("$", r"\$")


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _errors(summary: pd.DataFrame, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(means, [2, V] non-negative error bar lengths) of one interval column family."""
    mean = summary[key].to_numpy(float)
    low, high = summary[f"{key}.low"].to_numpy(float), summary[f"{key}.high"].to_numpy(float)
    errors = np.nan_to_num(np.vstack([mean - low, high - mean]))
    return mean, np.clip(errors, 0, None)


def _zoom(ax: Any, values: np.ndarray, around: float, pad: float = 0.08) -> None:
    """The y axis from the data's lowest to its highest value (interval ends included) and
    ``around`` (the line every value is read against), padded by ``pad`` of that span: the
    differences fill the plot instead of a thin band of a fixed 0-1 axis."""
    finite = values[np.isfinite(values)]
    low, high = min([around, *finite]), max([around, *finite])
    span = max(high - low, 0.02)
    ax.set_ylim(low - pad * span, high + pad * span)


def _grouped(ax: Any, summary: pd.DataFrame, keys: dict[str, str], bars: bool) -> None:
    """One group per variant (rank order), one error bar (or bar) per key in it."""
    x, width = np.arange(len(summary)), 0.8 / max(len(keys), 1)
    for i, (label, key) in enumerate(keys.items()):
        mean, errors = _errors(summary, key)
        at = x + (i - (len(keys) - 1) / 2) * width
        if bars:
            ax.bar(at, np.nan_to_num(mean), width, yerr=errors, capsize=3, label=plain(label))
        else:
            ax.errorbar(at, mean, yerr=errors, fmt=MARKERS[i % 10], capsize=3, label=plain(label))
    ax.set_xticks(x, [plain(v) for v in summary["variant"]], rotation=30, ha="right")
    if keys:
        ax.legend(fontsize="small")


def _winrate_plot(summary: pd.DataFrame, judges: tuple[str, ...]) -> Figure:
    fig = Figure(figsize=(max(6.0, 0.9 * len(summary) + 3), 4))
    ax = fig.add_subplot()
    keys = {j: f"winrate.{j}" for j in judges}
    _grouped(ax, summary, keys, bars=False)
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1, label="0.5: as the reference")
    ends = [summary[f"{k}{end}"] for k in keys.values() for end in ("", ".low", ".high")]
    _zoom(ax, np.concatenate([e.to_numpy(float) for e in ends]) if ends else np.array([]), 0.5)
    ax.set_title("Win-rate against the reference, per variant and judge")
    ax.set_ylabel("win-rate against the reference")
    return fig


def _kl_plot(summary: pd.DataFrame, long_df: pd.DataFrame, primary: str | None) -> Figure:
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    key = f"winrate.{primary}"
    rows = long_df[long_df["metric"].isin(["kl", key])]
    points = rows.pivot_table(index=["variant", "run_id"], columns="metric", values="value")
    values = np.array([])
    if {"kl", key} <= set(points.columns):
        values = points[key].to_numpy(float)
        for i, variant in enumerate(summary["variant"]):
            if variant in points.index.get_level_values("variant"):
                seeds = points.xs(variant, level="variant")
                ax.scatter(
                    seeds["kl"], seeds[key], marker=MARKERS[i % 10], s=45, label=plain(variant)
                )
        ax.legend(fontsize="small")
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    ax.margins(x=0.08)
    _zoom(ax, values, 0.5)
    ax.set_title(plain(f"Win-rate ({primary}) against KL, one point per seed"))
    ax.set_xlabel("KL(policy ‖ reference), per response")
    ax.set_ylabel(plain(f"win-rate ({primary})"))
    return fig


def _capability_plot(summary: pd.DataFrame, tasks: list[str], tolerance: float) -> Figure:
    """Each task's capability delta per variant, a bar with its interval; a task whose delta is 0
    for every variant (no bar to see) says so in the legend; a flagged regression is marked."""
    fig = Figure(figsize=(max(6.0, 0.9 * len(summary) + 3), 4))
    ax = fig.add_subplot()
    keys = {}
    for t in tasks:
        mean, errors = _errors(summary, f"capability_delta.{t}")
        flat = not np.nan_to_num(mean).any() and not errors.any()
        keys[f"{t} (0 for every variant)" if flat else t] = f"capability_delta.{t}"
    _grouped(ax, summary, keys, bars=True)
    x, width = np.arange(len(summary)), 0.8 / max(len(tasks), 1)
    for i, t in enumerate(tasks):
        flagged = summary.get(f"regression.{t}", pd.Series(False, index=summary.index))
        for j in np.flatnonzero(flagged.fillna(False).to_numpy(bool)):
            low = summary[f"capability_delta.{t}.low"].iloc[j]
            at = x[j] + (i - (len(tasks) - 1) / 2) * width
            ax.annotate(
                REGRESSION_MARK,
                (at, low),
                xytext=(0, -6),
                textcoords="offset points",
                ha="center",
                va="top",
                fontsize=14,
                color="tab:red",
            )
    ax.axhline(0, color="black", linewidth=0.8)
    ax.axhline(-tolerance, color="tab:red", linestyle="--", label=f"-tolerance ({tolerance:.3f})")
    ax.legend(fontsize="small")
    ax.set_title("Capability: each task's accuracy minus the base model's")
    ax.set_ylabel("accuracy minus the base model's")
    return fig


def difference_matrix(comparisons: pd.DataFrame, order: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """([V, V] differences row minus column, [V, V] separated) of one metric's comparisons
    (rows ``a, b, diff, separated``: ``diff`` is a minus b), variants in ``order``; NaN and
    False where a pair was not compared."""
    at = {v: i for i, v in enumerate(order)}
    diff = np.full((len(order), len(order)), np.nan)
    separated = np.zeros((len(order), len(order)), dtype=bool)
    for a, b, d, s in comparisons[["a", "b", "diff", "separated"]].itertuples(index=False):
        if a in at and b in at:
            i, j = at[a], at[b]
            diff[i, j], diff[j, i] = d, -d
            separated[i, j] = separated[j, i] = bool(s)
    return diff, separated


def text_colour(rgba: Any) -> str:
    """Black or white, whichever reads better on a cell of colour ``rgba``: white where the
    cell's relative luminance (WCAG 2, from its sRGB channels) is under 0.179, the luminance at
    which both give the same contrast ratio."""

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(float(c)) for c in tuple(rgba)[:3])
    return "white" if 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.179 else "black"


def _matrix_plot(summary: pd.DataFrame, comparisons: pd.DataFrame) -> Figure:
    order = list(summary["variant"])
    diff, separated = difference_matrix(comparisons, order)
    size = max(4.5, 0.6 * len(order) + 2.5)
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.add_subplot()
    reach = float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 1.0
    image = ax.imshow(diff, cmap="RdBu", vmin=-reach, vmax=reach)
    for i, j in np.ndindex(diff.shape):
        if np.isfinite(diff[i, j]):
            mark = "*" if separated[i, j] else ""
            colour = text_colour(image.to_rgba(diff[i, j]))
            text = f"{diff[i, j]:+.2f}{mark}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
    ax.set_title("Pairwise win-rate differences, row minus column")
    labels = [plain(v) for v in order]
    ax.set_xticks(range(len(order)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(order)), labels)
    fig.colorbar(image, ax=ax, label="win-rate difference, row minus column")
    return fig


def figures(
    summary: Summary, long_df: pd.DataFrame, comparisons: pd.DataFrame | None = None
) -> list[tuple[str, Figure]]:
    """(caption, figure) of the leaderboard plots: win-rates, win-rate against KL, the
    capability deltas when the suite has lm-eval tasks, and the pairwise matrix of one
    judge's win-rate when ``comparisons`` (that judge's win-rate rows of ``comparisons.parquet``)
    are given. Each figure is titled."""
    primary, tolerance, table = summary.judges.primary, summary.tolerance, summary.table
    matrix = []
    if comparisons is not None and len(comparisons):
        judge = comparisons["judge"].iloc[0]
        caption = (
            f"Pairwise differences of the {judge} win-rate, row minus column, paired on the"
            " same seeds and prompts; * = separated (Holm-adjusted p < 0.05 over every pair)."
        )
        matrix = [(caption, _matrix_plot(table, comparisons))]
    capability = []
    if summary.tasks:  # a suite without lm-eval tasks has no capability to plot
        caption = (
            f"Capability delta per task: mean over seeds with its 95% interval (dashed: minus the"
            f" tolerance, {tolerance:.3f}; {REGRESSION_MARK} under a bar: a regression, as in the"
            " table)."
        )
        capability = [(caption, _capability_plot(table, summary.tasks, tolerance))]
    return [
        (
            "Win-rate against the reference per variant and judge: mean over seeds with its 95%"
            " interval (dotted: 0.5, no better than the reference); the axis spans the data.",
            _winrate_plot(table, summary.judges.names),
        ),
        (
            f"Win-rate ({primary}) against KL, one point per seed.",
            _kl_plot(table, long_df, primary),
        ),
        *capability,
        *matrix,
    ]


def plots(
    summary: Summary, long_df: pd.DataFrame, comparisons: pd.DataFrame | None = None
) -> list[tuple[str, str]]:
    """(caption, base64 PNG) of ``figures``."""
    return [(caption, _png(fig)) for caption, fig in figures(summary, long_df, comparisons)]

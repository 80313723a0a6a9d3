"""The leaderboard: one row per variant, ranked by the primary judge's win-rate.

``summarise`` reduces the long table (and the run table, for costs and failures) to one row per
variant: per judge the win-rate (mean over seeds, 95% t-interval over seeds; one seed keeps its
bootstrap interval), KL, length, distinct-1/2, capability deltas (mean over seeds, marked ⚠ where
``harness check`` against the base model would flag a regression) and median costs (the FLOPs
estimate of ``harness.core.ledger`` among them).
``write_leaderboard`` writes ``leaderboard.md`` (stable text: no timestamps, no absolute paths)
and a self-contained ``leaderboard.html`` (inline CSS, plots from ``harness.report.plots`` as
base64 PNG; no script, no network).
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

from harness.core.files import write_atomic
from harness.core.judges import PROXY
from harness.core.rules import REGRESSION_MARK, is_regression
from harness.report.compare import SampleSummary, load_samples, read_comparisons, sample_summary
from harness.report.curve_plots import curve_plots
from harness.report.curve_report import CurveReport, load_report, tables
from harness.report.markup import html_table, inline, md_table
from harness.report.plots import plots
from harness.report.results import (
    SuiteInfo,
    aggregate,
    judges_of,
    judges_ranked,
    metric_suffixes,
    suite_hash,
    tolerance_of,
    variant_methods,
)
from harness.report.summary import Summary

QUALITY = {"kl": "KL", "length": "length", "distinct_1": "distinct-1", "distinct_2": "distinct-2"}
COSTS = {
    "wall_seconds": "wall s",
    "samples": "samples",
    "generated_tokens": "tokens",
    "reward_calls": "RM calls",
    "optimizer_steps": "opt steps",
    "flops": "TFLOPs",  # the compute ledger's estimate (harness.core.ledger), in 10^12
}
SuiteLike = SuiteInfo | dict[str, Any] | None


# --- the summary ------------------------------------------------------------------------------


def summarise(
    long_df: pd.DataFrame,
    runs_df: pd.DataFrame | None,
    suite_info: SuiteLike,
    samples: SampleSummary | None = None,
) -> Summary:
    """One row per variant, ranked (``rank`` 1 = best) by the primary judge's win-rate.

    Columns: rank, variant, method, seeds, failed, ``winrate.<judge>`` per judge and
    ``capability_delta.<task>`` per task (each with ``.low``/``.high``: its 95% interval),
    kl, length, distinct_1, distinct_2, ``regression.<task>`` (bool) per task, then the median
    costs. ``regression.<task>`` is the gate's rule (``harness.core.rules.is_regression``) on the
    mean delta over seeds and the upper end of its interval, against the base model's delta of 0.
    Returned as a ``Summary`` beside the judges (the primary one decided by ``Judges.of``), the
    tasks, the tolerance, the suites and seeds, and the samples' statistics (or None).
    ``suite_info`` is a ``SuiteInfo``, the ``suite.json`` mapping, or None.

    With ``samples`` (``harness.report.compare.sample_summary`` of the judged samples), every
    ``winrate.<judge>`` and its interval is the hierarchical bootstrap's over seeds, clusters and
    prompts, ``reward.<judge>`` is added beside it, and ``group`` (letters: two variants share one
    exactly when Holm does not separate them) and ``rank_best``/``rank_worst`` (the 95% rank
    interval) are filled.
    """
    suite_info = SuiteInfo.of(suite_info)
    judges, tasks = judges_of(long_df, suite_info), metric_suffixes(long_df, "capability_delta.")
    agg = aggregate(long_df).set_index(["variant", "metric"])
    variants = variant_methods(long_df, runs_df, suite_info)
    tolerance = tolerance_of(suite_info)
    rows = [
        _row(v, m, long_df, runs_df, agg, judges, tasks, tolerance) for v, m in variants.items()
    ]
    df = pd.DataFrame(rows)
    primary = judges_ranked(judges, suite_info).primary
    if samples is not None and len(df):
        df = df.assign(**samples.columns(list(df["variant"]), judges))
    if primary is not None and len(df):
        df = df.sort_values(
            f"winrate.{primary}", ascending=False, kind="stable", na_position="last"
        )
    df.insert(0, "rank", range(1, len(df) + 1))
    df = df.reset_index(drop=True)
    frames = [f for f in (long_df, runs_df) if f is not None]
    return Summary(
        table=df,
        judges=judges_ranked(judges, suite_info),
        tasks=tasks,
        tolerance=tolerance,
        suites=sorted({str(s) for f in frames for s in f["suite"]}),
        seeds=sorted({int(s) for f in frames for s in f["seed"]}),
        samples=samples,
    )


def _row(
    variant: str,
    method: str,
    long_df: pd.DataFrame,
    runs_df: pd.DataFrame | None,
    agg: pd.DataFrame,
    judges: list[str],
    tasks: list[str],
    tolerance: float,
) -> dict:
    def stat(metric: str, column: str = "mean") -> float:
        key = (variant, metric)
        return float(agg.at[key, column]) if key in agg.index else math.nan

    mine = long_df[long_df["variant"] == variant]
    row: dict = {"variant": variant, "method": method, "seeds": int(mine["seed"].nunique())}
    runs = runs_df[runs_df["variant"] == variant] if runs_df is not None else None
    row["failed"] = int((runs["status"] == "failed").sum()) if runs is not None else 0
    intervals = [f"winrate.{j}" for j in judges] + [f"capability_delta.{t}" for t in tasks]
    for metric in intervals:
        for column, suffix in (("mean", ""), ("ci_low", ".low"), ("ci_high", ".high")):
            row[f"{metric}{suffix}"] = stat(metric, column)
    row.update({metric: stat(metric) for metric in QUALITY})
    for task in tasks:
        delta = f"capability_delta.{task}"
        # one seed: its training variance is unknown, and the gate says inconclusive
        flagged = stat(delta, "seeds") >= 2 and is_regression(
            0.0, stat(delta), stat(delta, "ci_high"), tolerance
        )
        row[f"regression.{task}"] = flagged
    done = runs[runs["status"] == "done"] if runs is not None else pd.DataFrame()
    for cost in COSTS:
        known = cost in done and done[cost].notna().any()
        row[cost] = float(done[cost].median()) if known else math.nan
    return row


# --- formatting -------------------------------------------------------------------------------


def _num(value: float, digits: int = 3, sign: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _count(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.0f}"


def _tera(value: float) -> str:
    """FLOPs in TFLOPs: three significant digits, whole numbers from 1,000 on."""
    if math.isnan(value):
        return "-"
    tera = value / 1e12
    return f"{tera:,.0f}" if tera >= 1000 else f"{tera:.3g}"


def _cost(name: str, value: float) -> str:
    if name == "wall_seconds":
        return _num(value, 1)
    return _tera(value) if name == "flops" else _count(value)


def _interval(row: pd.Series, key: str) -> str:
    text = _num(row[key])
    low, high = row[f"{key}.low"], row[f"{key}.high"]
    if text != "-" and not (math.isnan(low) or math.isnan(high)):
        text += f" [{low:.3f}, {high:.3f}]"
    return text


def _delta(row: pd.Series, key: str) -> str:
    """A capability delta, signed, with its 95% interval (paired per item, over seeds)."""
    text = _num(row[key], sign=True)
    low, high = row[f"{key}.low"], row[f"{key}.high"]
    if text != "-" and not (math.isnan(low) or math.isnan(high)):
        text += f" [{low:+.3f}, {high:+.3f}]"
    return text


def _ranks(row: pd.Series) -> str:
    best, worst = int(row["rank_best"]), int(row["rank_worst"])
    return "-" if best == 0 else (str(best) if best == worst else f"{best}-{worst}")


def table_cells(summary: Summary) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells of the ranked table (shared by the markdown and the HTML)."""
    primary, table = summary.judges.primary, summary.table
    judges = list(summary.judges.names)
    judges = [primary, *[j for j in judges if j != primary]] if primary else judges
    tasks, sampled = summary.tasks, summary.samples is not None
    # the method column only where some variant is not named after its method
    named = bool((table["variant"] != table["method"]).any())
    headers = ["rank", "variant", *(["method"] if named else []), "seeds"]
    headers += ["rank interval", "group"] if sampled else []
    for j in judges:
        headers.append(f"win-rate {j}" + (" (primary)" if j == primary else ""))
        headers += [f"reward {j}"] if sampled else []
    headers += [*QUALITY.values(), *[f"Δ {t}" for t in tasks], *COSTS.values()]
    rows = []
    for _, row in table.iterrows():
        seeds = str(row["seeds"]) + (f" (+{row['failed']} failed)" if row["failed"] else "")
        cells = [str(row["rank"]), row["variant"], *([row["method"]] if named else []), seeds]
        cells += [_ranks(row), row["group"]] if sampled else []
        for j in judges:
            cells.append(_interval(row, f"winrate.{j}"))
            cells += [_num(row[f"reward.{j}"])] if sampled else []
        cells += [_num(row["kl"]), _num(row["length"], 1)]
        cells += [_num(row["distinct_1"]), _num(row["distinct_2"])]
        for task in tasks:
            mark = f" {REGRESSION_MARK}" if row[f"regression.{task}"] else ""
            cells.append(_delta(row, f"capability_delta.{task}") + mark)
        cells += [_cost(c, row[c]) for c in COSTS]
        rows.append(cells)
    return headers, rows


def ranking_cells(summary: Summary) -> tuple[list[str], list[list[str]]]:
    """The ranking in brief, as ``harness run`` prints it at its end: rank, variant, the primary
    judge's win-rate with its interval, the group (with judged samples) and each capability
    delta (marked where it is a regression)."""
    primary, table, sampled = summary.judges.primary, summary.table, summary.samples is not None
    headers = ["rank", "variant", f"win-rate {primary}", *(["group"] if sampled else [])]
    headers += [f"Δ {t}" for t in summary.tasks]
    rows = []
    for _, row in table.iterrows():
        cells = [str(row["rank"]), row["variant"]]
        cells.append(_interval(row, f"winrate.{primary}") if primary else "-")
        cells += [row["group"]] if sampled else []
        for task in summary.tasks:
            mark = f" {REGRESSION_MARK}" if row[f"regression.{task}"] else ""
            cells.append(_num(row[f"capability_delta.{task}"], sign=True) + mark)
        rows.append(cells)
    return headers, rows


def failed_runs(runs_df: pd.DataFrame | None) -> list[list[str]]:
    """variant, seed, run_id, attempts, error (first 300 characters, on one line) per failure."""
    if runs_df is None:
        return []
    failed = runs_df[runs_df["status"] == "failed"]
    rows = []
    for _, run in failed.iterrows():
        error = str(run["error"]) if isinstance(run["error"], str) else "(no error recorded)"
        error = " ".join(error.split())
        error = error if len(error) <= 300 else error[:299] + "…"
        rows.append([run["variant"], str(run["seed"]), run["run_id"], str(run["attempts"]), error])
    return rows


def notes(summary: Summary, runs_df: pd.DataFrame | None, info: SuiteInfo | None) -> list[str]:
    """How the table was made, one bullet each (markdown inline code in backticks)."""
    judges, primary = summary.judges.names, summary.judges.primary
    described = [f"{j} (primary: ranks the table)" if j == primary else j for j in judges]
    if PROXY in judges:
        described = [d + (" (the training reward model)" if d == PROXY else "") for d in described]
    seeds, samples = summary.seeds, summary.samples
    table = summary.table
    alone = [str(v) for v in table.loc[table["seeds"] == 1, "variant"]] if "seeds" in table else []
    out = [
        f"Judges: {', '.join(described) or 'none'}",
        f"Seeds: {', '.join(map(str, seeds)) or 'unknown'}",
        *([_one_seed_note(alone, len(summary.table))] if alone else []),
        *(samples.notes() if samples is not None else _seed_notes()),
        "KL: Monte-Carlo KL(policy ‖ reference) per response; length: mean response tokens;"
        " distinct-n: distinct n-grams / all n-grams",
        "Capability: Δ = the policy's lm-eval score minus the base model's, paired per item"
        " (accuracy: Newcombe's paired interval; bits per byte: bits saved, so a loss is"
        f" negative), mean over seeds; tolerance"
        f" {summary.tolerance:.3f}; {REGRESSION_MARK} = a regression as `harness check`"
        " against the base model flags it: the mean dropped beyond the tolerance and its 95%"
        " interval lies below 0",
        "Costs: median over a variant's finished runs; TFLOPs: 2·N per token through a forward"
        " pass or generated, 6·N per token trained, 2·N_rm per token the reward model scores"
        " (N: parameters a token multiplies by; `harness/core/ledger.py`)",
    ]
    if runs_df is not None:
        commits = sorted({str(c)[:12] for c in runs_df["git_commit"].dropna()}) or ["unknown"]
        devices = sorted(set(runs_df["device_name"].dropna())) or ["unknown"]
        out.append(f"Provenance: git commit `{'`, `'.join(commits)}`; device {', '.join(devices)}")
    return out


def _one_seed_note(alone: list[str], variants: int) -> str:
    """The header's line on variants with one seed: what their intervals do not carry."""
    if len(alone) == variants:
        who, whose = "every variant has", "their"
    else:
        who = f"{', '.join(alone)} {'has' if len(alone) == 1 else 'have'}"
        whose = "its" if len(alone) == 1 else "their"
    return (
        f"Training variance: {who} one finished seed, so {whose} intervals do **not** carry the"
        " variance between training runs (one run cannot measure it): they say how the same"
        " run would score on other prompts, not what another run would give; no group or"
        " capability mark is claimed at 95% for a variant of one seed (run 2+ seeds, or gate"
        " a one-seed candidate with `harness check` against a baseline of several seeds, whose"
        " between-run variance it borrows)"
    )


def _seed_notes() -> list[str]:
    return [
        "Win-rate: (wins + ties/2) / n against the reference policy on held-out prompts; mean over"
        " seeds with a 95% t-interval over seeds (one seed: its bootstrap interval)",
        "No judged samples (`samples.parquet`, `reference_samples.parquet`) with this table:"
        " intervals are over seeds only; groups, rank intervals, pairwise comparisons and the"
        " power line need the samples",
    ]


def title(summary: Summary, info: SuiteInfo | None) -> str:
    return info.name if info else ", ".join(summary.suites) or "results"


def made_by(summary: Summary, runs_df: pd.DataFrame | None, info: SuiteInfo | None) -> str:
    """One sentence: which suite (and hash), how many runs finished and failed."""
    if runs_df is not None:
        done = int((runs_df["status"] == "done").sum())
        counts = f"{len(runs_df)} runs: {done} done, {len(runs_df) - done} failed"
    else:
        counts = "no run table (failed runs unknown)"
    digest = suite_hash(info, runs_df)
    hashed = f" (hash `{digest[:16]}`)" if digest else ""
    return f"Suite `{title(summary, info)}`{hashed}; {counts}."


# --- markdown and HTML ------------------------------------------------------------------------


def markdown(
    summary: Summary,
    runs_df: pd.DataFrame | None,
    info: SuiteInfo | None,
    curves: CurveReport | None = None,
) -> str:
    """The text of ``leaderboard.md``; the curves section when ``curves`` are given."""
    lines = [f"# Leaderboard: {title(summary, info)}", "", made_by(summary, runs_df, info), ""]
    lines += [f"- {note}" for note in notes(summary, runs_df, info)]
    lines += ["", "## Ranking", "", *md_table(*table_cells(summary)), "", "## Failed runs", ""]
    failed = failed_runs(runs_df)
    if failed:
        lines += md_table(["variant", "seed", "run_id", "attempts", "error"], failed)
    else:
        lines.append("None." if runs_df is not None else "Unknown (no run table).")
    for table in tables(curves) if curves is not None else []:
        lines += [
            "",
            f"## {table.title}",
            "",
            table.text,
            "",
            *md_table(table.headers, table.rows),
        ]
    return "\n".join(lines) + "\n"


CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.4em; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; text-align: center; white-space: normal; vertical-align: bottom; }
table.ranking th { position: sticky; top: 0; z-index: 1; box-shadow: 0 1px 0 #ccc; }
table.ranking th { min-width: 3em; max-width: 5.5em; overflow-wrap: anywhere; }
details { margin: 0.5em 0 1em; } summary { cursor: pointer; color: #444; }
figure h3 { margin: 0 0 0.3em; font-size: 1em; }
td.text { text-align: left; white-space: normal; } .ci { color: #666; font-size: 0.85em; }
tr:nth-child(even) td { background: #fafafa; }
code { background: #f3f3f3; padding: 0 0.2em; }
figure { margin: 1.5em 0; } figcaption { color: #555; font-size: 0.9em; }
img { max-width: 100%; }
"""


def ranking_html(summary: Summary) -> list[str]:
    """The ranking on the page: its quality columns in a table whose header stays in view (and
    that fits 1,400 px), the cost columns beside the rank and variant in a table that opens on a
    click; the markdown has them in one table."""
    headers, rows = table_cells(summary)
    keys = 3 if "method" in headers else 2  # rank, variant (and method): in both tables
    split = len(headers) - len(COSTS)
    quality = html_table(headers[:split], [r[:split] for r in rows], {1, 2}, "ranking", False)
    cost_rows = [r[:keys] + r[split:] for r in rows]
    cost = html_table(headers[:keys] + headers[split:], cost_rows, {1, 2}, "ranking costs", False)
    opener = "<summary>Costs per variant: median over its runs (click to show)</summary>"
    return [quality, f"<details>{opener}{cost}</details>"]


def _matrix(summary: Summary) -> pd.DataFrame | None:
    samples = summary.samples
    return None if samples is None else samples.pairs(samples.judge, "win")


def html_page(
    summary: Summary,
    long_df: pd.DataFrame,
    runs_df: pd.DataFrame | None,
    info: SuiteInfo | None,
    curves: CurveReport | None = None,
) -> str:
    """The text of ``leaderboard.html``: self-contained, no script, no external resource; the
    curves section when ``curves`` are given."""
    name = html.escape(title(summary, info))
    items = "".join(f"<li>{inline(n)}</li>" for n in notes(summary, runs_df, info))
    parts = [f"<h1>Leaderboard: {name}</h1>", f"<p>{inline(made_by(summary, runs_df, info))}</p>"]
    parts.append(f"<ul>{items}</ul>")
    parts += ["<h2>Ranking</h2>", *ranking_html(summary)]
    failed = failed_runs(runs_df)
    parts.append("<h2>Failed runs</h2>")
    headers = ["variant", "seed", "run_id", "attempts", "error"]
    parts.append(html_table(headers, failed, {0, 2, 4}) if failed else "<p>None.</p>")
    figures = plots(summary, long_df, _matrix(summary))
    for table in tables(curves) if curves is not None else []:
        parts += [f"<h2>{html.escape(table.title)}</h2>", f"<p>{inline(table.text)}</p>"]
        parts.append(html_table(table.headers, table.rows, set(table.text_columns)))
    figures += curve_plots(curves) if curves is not None else []
    parts.append("<h2>Plots</h2>")
    for caption, png in figures:
        parts.append(
            f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{png}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Leaderboard: {name}</title><style>{CSS}</style></head>\n"
        "<body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def write_leaderboard(
    results_dir: Path,
    long_df: pd.DataFrame,
    runs_df: pd.DataFrame | None,
    suite_info: SuiteLike,
    summary: Summary | None = None,
) -> tuple[Path, Path]:
    """Write ``leaderboard.md`` and ``leaderboard.html`` into ``results_dir`` (atomically), from
    ``summary`` when given, else from ``summarise_dir``'s."""
    suite_info = SuiteInfo.of(suite_info)
    if summary is None:
        summary = summarise_dir(results_dir, long_df, runs_df, suite_info)
    md_path, html_path = (
        Path(results_dir) / "leaderboard.md",
        Path(results_dir) / "leaderboard.html",
    )
    judges = summary.judges
    curves = load_report(Path(results_dir), list(judges.names), judges.primary)
    write_atomic(md_path, markdown(summary, runs_df, suite_info, curves))
    write_atomic(html_path, html_page(summary, long_df, runs_df, suite_info, curves))
    return md_path, html_path


def summarise_dir(
    results_dir: Path, long_df: pd.DataFrame, runs_df: pd.DataFrame | None, suite_info: SuiteLike
) -> Summary:
    """``summarise`` with the judged samples of ``results_dir`` when it has them (and its
    ``comparisons.parquet`` when that is up to date, else computed afresh)."""
    suite_info = SuiteInfo.of(suite_info)
    samples = load_samples(Path(results_dir))
    if samples is None:
        return summarise(long_df, runs_df, suite_info)
    primary = judges_ranked(judges_of(long_df, suite_info), suite_info).primary
    stats = sample_summary(samples, primary, read_comparisons(Path(results_dir)))
    return summarise(long_df, runs_df, suite_info, stats)

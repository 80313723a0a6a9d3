"""The ``harness leaderboard`` and ``harness check`` commands (``register(app)`` adds them).

Exit codes: ``leaderboard``: 0 written, 2 bad input, 1 an internal error. ``check``: 0 pass,
1 a regression (or a metric missing from the candidate), 3 inconclusive (an interval too wide to
decide at the tolerance, or runs that did not finish), 2 bad input or no verdict
(``harness.report.gate`` has the rule). Results go to stdout (the gate's provenance warnings
too, under its verdict table, then each side's runs that did not finish), errors to
stderr as one line; tracebacks only with ``--debug``. Tables are rich tables on a terminal and
plain aligned lines elsewhere, so that no number is ever wrapped or cut.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from harness.cli.common import (
    BAD_INPUT,
    INCONCLUSIVE,
    INTERNAL_ERROR,
    REGRESSION,
    Debug,
    fail,
    print_table,
    stderr,
    stdout,
    warn,
)
from harness.core.rules import DEFAULT_TOLERANCE

if TYPE_CHECKING:
    from harness.report.gate import Verdict, VerdictRow

STATUS_STYLE = {
    "pass": "bold green",
    "regression": "bold red",
    "missing": "bold red",
    "inconclusive": "bold yellow",
    "unfinished": "bold yellow",
}
CHECK_EXIT = {"pass": 0, "regression": REGRESSION, "inconclusive": INCONCLUSIVE}


# --- leaderboard ------------------------------------------------------------------------------


def leaderboard(
    results_dir: Annotated[
        Path, typer.Argument(metavar="RESULTS_DIR", help="results/<suite>: runs/*.json or tables.")
    ],
    debug: Debug = False,
) -> None:
    """Collect a suite's results into tables, leaderboard.md and leaderboard.html."""
    from harness.report.results import ResultsError  # deferred: pandas, only for this command

    try:
        _leaderboard(results_dir)
    except ResultsError as exc:
        if debug:
            stderr().print_exception()
        fail(str(exc), BAD_INPUT)
    except Exception as exc:
        if debug:
            raise
        fail(
            f"internal error: {type(exc).__name__}: {exc} (--debug shows the traceback)",
            INTERNAL_ERROR,
        )


def _leaderboard(results_dir: Path) -> None:
    # deferred: pandas and matplotlib (~1.5 s), which no other command needs
    from harness.report.compare import write_comparisons
    from harness.report.leaderboard import summarise_dir, table_cells, write_leaderboard
    from harness.report.results import (
        ResultsError,
        corrupt_files,
        load_results,
        load_suite_info,
        read_table,
        write_tables,
    )

    if not results_dir.is_dir():
        raise ResultsError(f"{results_dir}: not a directory")
    info = load_suite_info(results_dir)
    written: list[Path] = []
    if (results_dir / "runs").is_dir():
        results = load_results(results_dir, on_problem=warn)
        corrupt = corrupt_files(results_dir)
        if corrupt:
            warn(
                f"{len(corrupt)} corrupt run file(s) set aside in {corrupt[0].parent}"
                " are not in the tables; the next harness run of the suite redoes their runs"
            )
        if not results:
            raise ResultsError(f"{results_dir / 'runs'}: no readable run files")
        written += write_tables(results_dir, results, info).values()
    else:  # tables only: the comparisons from the samples on disk
        written += write_comparisons(results_dir).values()
    long_df, runs_df = read_table(results_dir)
    summary = summarise_dir(results_dir, long_df, runs_df, info)
    written += write_leaderboard(results_dir, long_df, runs_df, info, summary)
    title = f"Leaderboard (ranked by {summary.judges.primary} win-rate)"
    out = stdout()
    print_table(out, title, *table_cells(summary), left={1, 2}, keys=2)
    failed = int(summary.table["failed"].sum())
    if failed:
        out.print(f"[bold yellow]{failed} failed run(s)[/]: listed in leaderboard.md")
    for path in written:
        out.print(f"wrote {escape(str(path))}")


# --- check ------------------------------------------------------------------------------------


def check(
    baseline: Annotated[
        Path,
        typer.Option(help="Baseline: a results dir (its samples when it has them) or a table."),
    ],
    candidate: Annotated[
        Path | None,
        typer.Option(
            help="Candidate: a results dir or table (left out: the baseline, for --variant).",
        ),
    ] = None,
    variant: Annotated[
        str | None, typer.Option(metavar="NEW", help="Compare only this candidate variant.")
    ] = None,
    against: Annotated[
        str | None,
        typer.Option(metavar="OLD", help="...against this baseline variant (default: NEW)."),
    ] = None,
    tolerance: Annotated[
        float | None,
        typer.Option(
            help="Largest accepted drop (default: the baseline suite's, else"
            f" {DEFAULT_TOLERANCE}; never the candidate's)."
        ),
    ] = None,
    allow_mismatch: Annotated[
        bool,
        typer.Option(
            help="Compare sides made with different settings (budget, data, models, evaluation)"
            " instead of refusing; the differences are named under the verdict."
        ),
    ] = False,
    debug: Debug = False,
) -> None:
    """Decide candidate - baseline per metric: exit 0 pass, 1 regression (or a metric missing),
    3 inconclusive (the interval is too wide to decide at the tolerance, or runs did not finish),
    2 bad input."""
    from harness.report.gate import GateInputError  # deferred: pandas, only for this command
    from harness.report.gate import check as run_check

    try:
        verdict = run_check(baseline, candidate, variant, against, tolerance, allow_mismatch)
    except GateInputError as exc:
        if debug:
            stderr().print_exception()
        fail(str(exc), BAD_INPUT)
    except Exception as exc:
        if debug:
            raise
        fail(f"no verdict: {type(exc).__name__}: {exc} (--debug shows the traceback)", BAD_INPUT)
    _print_verdict(verdict)
    raise typer.Exit(CHECK_EXIT[verdict.overall])


def _print_verdict(verdict: Verdict) -> None:
    title = f"Regression check (tolerance {verdict.tolerance:.3f} from {verdict.tolerance_source})"
    headers = ["variant", "metric", "baseline", "candidate", "diff", "95% interval", "basis"]
    rows = []
    for row in verdict.rows:
        numbers = [_fmt(row.baseline), _fmt(row.candidate), _fmt(row.diff, sign=True)]
        interval = "-" if math.isnan(row.ci_low) else f"[{row.ci_low:+.3f}, {row.ci_high:+.3f}]"
        basis = row.basis if row.seed_level == "measured" else f"{row.basis}; {_level(row)}"
        rows.append([row.pair, row.metric, *numbers, interval, basis, row.status])
    out = stdout()
    print_table(out, title, [*headers, "verdict"], rows, {0, 1, 6, 7}, keys=2)
    if verdict.differences:
        out.print(
            f"[bold yellow]warning:[/] the two sides were made differently"
            f" ({escape('; '.join(verdict.differences))}): part of any difference may come from"
            " that, not the method; gate within one suite run instead (harness check --baseline"
            " RESULTS_DIR --variant NEW --against OLD)"
        )
    if verdict.unchecked:
        out.print(
            f"[bold yellow]warning:[/] the settings of the comparison cannot be checked"
            f" ({escape('; '.join(verdict.unchecked))}): the two sides may differ in budget, data,"
            " models or evaluation, and part of any difference may come from that, not the"
            " method; keep each table's suite.json beside it (<stem>.suite.json), or gate within"
            " one suite run (harness check --baseline RESULTS_DIR --variant NEW --against OLD)"
        )
    for line in verdict.under_test:
        out.print(f"under test: {escape(line)}")
    for line in verdict.power:
        out.print(f"power: {escape(line)}")
    for line in verdict.unfinished:
        out.print(f"[{STATUS_STYLE['unfinished']}]UNFINISHED[/] {escape(line)}")
    for status, label in (("regression", "REGRESSION"), ("missing", "MISSING")):
        for row in verdict.with_status(status):
            out.print(f"[{STATUS_STYLE[status]}]{label}[/] {escape(row.reason())}")
    for row in verdict.inconclusive:
        out.print(f"[{STATUS_STYLE['inconclusive']}]INCONCLUSIVE[/] {escape(row.reason())}")
    pairs = len({(r.variant, r.against) for r in verdict.rows})
    counts = f"{len(verdict.rows)} comparisons over {pairs} variant(s)"
    style = STATUS_STYLE[verdict.overall]
    summary = {
        "pass": f"no drop beyond {verdict.tolerance:.3f}",
        "regression": "a drop beyond the tolerance (or a missing metric)",
        "inconclusive": "no regression shown, but not every drop beyond"
        f" {verdict.tolerance:.3f} is ruled out"
        if verdict.inconclusive
        else f"no drop beyond {verdict.tolerance:.3f} shown, but not every run finished",
    }[verdict.overall]
    if verdict.unfinished:
        summary += f" ({len(verdict.unfinished)} variant(s) with runs that did not finish)"
    out.print(f"[{style}]{verdict.overall}:[/] {summary} in {counts}")


def _level(row: VerdictRow) -> str:
    """Where a row's between-run variance came from, when not from both sides' own seeds."""
    if row.seed_level == "none":
        return "training variance unknown"
    return f"seed variance {row.seed_level}"


def _fmt(x: float, sign: bool = False) -> str:
    return "-" if math.isnan(x) else (f"{x:+.3f}" if sign else f"{x:.3f}")


def register(app: typer.Typer) -> None:
    """Add ``leaderboard`` and ``check`` to the ``harness`` app."""
    app.command("leaderboard", short_help="Tables, leaderboard.md and .html of results.")(
        leaderboard
    )
    app.command("check", short_help="Gate a candidate against a baseline.")(check)

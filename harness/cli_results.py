"""The ``harness leaderboard`` and ``harness check`` commands (``register(app)`` adds them).

Exit codes: ``leaderboard``: 0 written, 2 bad input, 1 an internal error. ``check``: 0 no
regression, 1 a regression (or a metric missing from the candidate), 2 bad input or no verdict.
Results go to stdout, errors to stderr as one line; tracebacks only with ``--debug``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from harness.cli_common import (
    BAD_INPUT,
    INTERNAL_ERROR,
    REGRESSION,
    Debug,
    fail,
    stderr,
    stdout,
    warn,
)
from harness.rules import DEFAULT_TOLERANCE

if TYPE_CHECKING:
    from harness.gate import Verdict

STATUS_STYLE = {"ok": "green", "regression": "bold red", "missing": "bold yellow"}


# --- leaderboard ------------------------------------------------------------------------------


def leaderboard(
    results_dir: Annotated[
        Path, typer.Argument(metavar="RESULTS_DIR", help="results/<suite>: runs/*.json or tables.")
    ],
    debug: Debug = False,
) -> None:
    """Collect a suite's results into tables, leaderboard.md and leaderboard.html."""
    from harness.results import ResultsError  # deferred: pandas, only for this command

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
    from harness.leaderboard import summarise, table_cells, write_leaderboard
    from harness.results import (
        ResultsError,
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
        if not results:
            raise ResultsError(f"{results_dir / 'runs'}: no readable run files")
        written += write_tables(results_dir, results, info).values()
    long_df, runs_df = read_table(results_dir)
    written += write_leaderboard(results_dir, long_df, runs_df, info)
    summary = summarise(long_df, runs_df, info)
    headers, rows = table_cells(summary)
    table = Table(title=f"Leaderboard (ranked by {summary.attrs['primary_judge']} win-rate)")
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i in (1, 2) else "right")
    for row in rows:
        table.add_row(*map(escape, row))
    out = stdout()
    out.print(table)
    failed = int(summary["failed"].sum())
    if failed:
        out.print(f"[bold yellow]{failed} failed run(s)[/]: listed in leaderboard.md")
    for path in written:
        out.print(f"wrote {escape(str(path))}")


# --- check ------------------------------------------------------------------------------------


def check(
    baseline: Annotated[
        Path, typer.Option(help="Baseline: a results dir or a table (.parquet/.csv).")
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
            help=f"Largest accepted drop (default: the suite's, else {DEFAULT_TOLERANCE})."
        ),
    ] = None,
    debug: Debug = False,
) -> None:
    """Compare a candidate with a baseline: exit 1 on a regression, 0 if none, 2 on bad input."""
    from harness.gate import GateInputError  # deferred: pandas, only for this command
    from harness.gate import check as run_check

    try:
        verdict = run_check(baseline, candidate, variant, against, tolerance)
    except GateInputError as exc:
        if debug:
            stderr().print_exception()
        fail(str(exc), BAD_INPUT)
    except Exception as exc:
        if debug:
            raise
        fail(f"no verdict: {type(exc).__name__}: {exc} (--debug shows the traceback)", BAD_INPUT)
    _print_verdict(verdict)
    if not verdict.passed:
        raise typer.Exit(REGRESSION)


def _print_verdict(verdict: Verdict) -> None:
    title = f"Regression check (tolerance {verdict.tolerance:.3f} from {verdict.tolerance_source})"
    table = Table(title=title)
    for header in ("variant", "metric", "baseline", "candidate", "cand. 95% hi", "drop", "status"):
        right = header not in ("variant", "metric")
        table.add_column(header, no_wrap=True, justify="right" if right else "left")
    for row in verdict.rows:
        pair = row.variant if row.variant == row.against else f"{row.variant} vs {row.against}"
        values = (row.baseline, row.candidate, row.candidate_high, row.drop)
        numbers = ["-" if math.isnan(x) else f"{x:.3f}" for x in values]
        status = f"[{STATUS_STYLE[row.status]}]{row.status}[/]"
        table.add_row(escape(pair), escape(row.metric), *numbers, status)
    out = stdout()
    out.print(table)
    for row in verdict.regressions:
        out.print(f"[bold red]REGRESSION[/] {escape(row.reason())}")
    for row in verdict.missing:
        out.print(f"[bold yellow]MISSING[/] {escape(row.reason())}")
    if verdict.passed:
        variants = len({(r.variant, r.against) for r in verdict.rows})
        counts = f"{len(verdict.rows)} comparisons over {variants} variant(s)"
        out.print(f"[bold green]ok:[/] no regression beyond {verdict.tolerance:.3f} in {counts}")


def register(app: typer.Typer) -> None:
    """Add ``leaderboard`` and ``check`` to the ``harness`` app."""
    app.command("leaderboard")(leaderboard)
    app.command("check")(check)

"""What every ``harness`` command shares: exit codes, the two consoles, one-line errors and
warnings, and the ``--debug`` option.

Exit codes: 0 success, 2 bad input, 1 an internal error (or, for ``harness check``, a
regression), 3 inconclusive (``harness check``: the interval too wide to decide).
Results go to stdout, errors and warnings to stderr; tracebacks only with ``--debug``. Tables
never cut a value: on a terminal too wide ones are split by columns, elsewhere plain lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Literal, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from harness.core.errors import InputError
from harness.load.data import DataUnavailableError

BAD_INPUT = 2
INTERNAL_ERROR = 1
REGRESSION = 1
INCONCLUSIVE = 3

Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]


def stdout() -> Console:
    """The console for results."""
    return Console(highlight=False, soft_wrap=True)


def stderr() -> Console:
    """The console for errors, warnings and progress."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = INTERNAL_ERROR) -> NoReturn:
    """``error: <message>`` on stderr as one line, then exit with ``code``."""
    stderr().print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def fail_on(exc: BaseException) -> NoReturn:
    """Exit for an exception no command expected by name: bad input (``InputError``, data that
    cannot be had, a file the system refuses) is exit 2 with its message; anything else an
    internal error (exit 1), with the first line of its message."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, InputError | DataUnavailableError):
        fail(text, BAD_INPUT)
    if isinstance(exc, PermissionError | IsADirectoryError | NotADirectoryError):
        fail(f"{exc.filename}: {exc.strerror}", BAD_INPUT)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    fail(f"internal error: {type(exc).__name__}: {first} (--debug shows the traceback)")


def warn(message: str) -> None:
    """``warning: <message>`` on stderr."""
    stderr().print(f"[yellow]warning:[/] {escape(message)}")


def print_table(
    out: Console,
    title: str,
    headers: list[str],
    rows: list[list[str]],
    left: set[int],
    keys: int = 1,
) -> None:
    """``rows`` (plain text) under ``headers``; ``left``: the left-aligned columns. Elsewhere than
    a terminal (a pipe, a file, a CI log): plain aligned lines at full width. On a terminal: a rich
    table, or, when that would not fit, several, each with the first ``keys`` columns and as many
    of the others as fit; no cell is ever cut."""
    widths = [max(len(c) for c in column) for column in zip(headers, *rows, strict=True)]
    if not out.is_terminal:
        _print_plain(out, title, headers, rows, left, widths)
        return
    for n, part in enumerate(column_blocks(widths, keys, out.width)):
        table = Table(title=title if n == 0 else None)
        for i in part:
            justify: Literal["left", "right"] = "left" if i in left else "right"
            table.add_column(headers[i], justify=justify, min_width=widths[i], overflow="fold")
        for row in rows:
            table.add_row(*(escape(row[i]) for i in part))
        out.print(table)


def column_blocks(widths: list[int], keys: int, width: int) -> list[list[int]]:
    """Column indices of each table: the first ``keys`` columns in every one, then the others in
    order, as many as fit ``width`` (a rich table spends 3 characters a column beside its cells,
    and 1 on its left border)."""
    fixed = list(range(min(keys, len(widths))))
    start = 1 + sum(widths[i] + 3 for i in fixed)
    blocks: list[list[int]] = []
    current: list[int] = []
    used = start
    for i in range(len(fixed), len(widths)):
        if current and used + widths[i] + 3 > width:
            blocks.append(fixed + current)
            current, used = [], start
        current.append(i)
        used += widths[i] + 3
    return [*blocks, fixed + current]


def _print_plain(
    out: Console,
    title: str,
    headers: list[str],
    rows: list[list[str]],
    left: set[int],
    widths: list[int],
) -> None:
    def line(cells: list[str]) -> str:
        padded = [
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    out.print(title, markup=False)
    for cells in (headers, *rows):
        out.print(line(cells), markup=False)


def print_rich_table(out: Console, table: Table) -> None:
    """A rich table whose cells must not be cut: elsewhere than a terminal the console is widened
    to the table's natural width (a file has no width to respect); on a terminal, cells wrap."""
    for column in table.columns:
        column.overflow = "fold"
    if not out.is_terminal:
        natural = Measurement.get(out, out.options.update_width(10_000), table).maximum
        out.width = max(out.width, natural)
    out.print(table)


@contextmanager
def reported(debug: bool, interrupted: str) -> Iterator[None]:
    """Ctrl-C inside: ``interrupted`` on stderr, exit 130; any other error: its short message
    (``fail_on``), the traceback only with ``--debug``."""
    try:
        yield
    except KeyboardInterrupt:
        stderr().print(interrupted)
        raise typer.Exit(130) from None
    except Exception as exc:
        if debug:
            raise
        fail_on(exc)

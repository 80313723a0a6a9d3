"""What every ``harness`` command shares: exit codes, the two consoles, one-line errors and
warnings, and the ``--debug`` option.

Exit codes: 0 success, 2 bad input, 1 an internal error (or, for ``harness check``, a
regression), 3 inconclusive (``harness check``: the interval too wide to decide).
Results go to stdout, errors and warnings to stderr; tracebacks only with ``--debug``.
"""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

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
    from harness.data import DataUnavailableError  # light: the data module imports no torch
    from harness.errors import InputError

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

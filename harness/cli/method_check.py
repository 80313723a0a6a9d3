"""``harness method-check NAME...``: the conformance kit (``harness.testing``) on the command
line, a table of every check of each method. Exit 0 when every check passed (or does not apply),
1 when one failed, 2 for a name no package registers."""

from __future__ import annotations

from typing import Annotated

import typer

from harness.cli.common import BAD_INPUT, Debug, fail, print_table, reported, stdout
from methods import REGISTRY, UnknownMethodError, get


def method_check(
    names: Annotated[
        list[str] | None,
        typer.Argument(metavar="NAME...", help="Registered methods (harness methods lists them)."),
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Check every registered method.")] = False,
    debug: Debug = False,
) -> None:
    """Run each method on the tiny world at a small budget and check the contract every built-in
    method honours: parameters strict, typed and documented; every trainable parameter moves;
    the reference unchanged; the budget respected; two runs with one seed identical; the loss
    finite; LoRA; compute charged; sampling with the training decoding.

    Exit 0 when every check passed, 1 when one failed, 2 for an unknown method."""
    chosen = list(REGISTRY) if every else list(names or [])
    if not chosen:
        fail("name a method (harness methods lists them) or give --all", BAD_INPUT)
    try:
        methods = [get(name) for name in chosen]
    except UnknownMethodError as exc:
        fail(str(exc), BAD_INPUT)
    from harness.testing import check_method  # deferred: torch and the tiny world's models

    out = stdout()
    failed: list[str] = []
    with reported(debug, "interrupted"):
        for method in methods:
            report = check_method(method)
            rows = [[c.name, c.status, c.detail] for c in report.checks]
            verdict = "passes" if report.ok else f"FAILS {', '.join(report.failed)}"
            print_table(out, f"{method.name}: {verdict}", ["check", "", "detail"], rows, {0, 2})
            if not report.ok:
                failed.append(method.name)
    if failed:
        out.print(f"{len(failed)} of {len(methods)} failed: {', '.join(failed)}")
        raise typer.Exit(1)
    out.print(f"{len(methods)} method(s) pass every check")


def register(app: typer.Typer) -> None:
    """Add ``method-check`` to the ``harness`` app."""
    app.command("method-check", short_help="Check methods against the contract of a method.")(
        method_check
    )

"""The ``harness bench`` command (``register(app)`` adds it).

Exit codes: 0 written, 2 bad input or ours and TRL did different work (``WorkMismatchError``),
1 an internal error. The table goes to stdout, errors to stderr as one line; tracebacks only with
``--debug``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.bench import BenchConfig

DEFAULT = BenchConfig()
BAD_INPUT = 2
INTERNAL_ERROR = 1


def _fail(message: str, code: int) -> NoReturn:
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[bold red]error:[/] {escape(message)}"
    )
    raise typer.Exit(code)


def bench(
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps per timed run.")] = (
        DEFAULT.steps
    ),
    repeats: Annotated[int, typer.Option(min=1, help="Timed runs per side (medians).")] = (
        DEFAULT.repeats
    ),
    warmup: Annotated[int, typer.Option(min=0, help="Untimed runs per side first.")] = (
        DEFAULT.warmup
    ),
    threads: Annotated[int, typer.Option(min=1, help="torch threads, both sides.")] = (
        DEFAULT.threads
    ),
    batch_size: Annotated[
        int, typer.Option(min=1, help="Pairs per step (DPO, RM); prompts per step (GRPO...).")
    ] = DEFAULT.batch_size,
    group_size: Annotated[
        int, typer.Option(min=2, help="Completions per prompt (GRPO num_generations).")
    ] = DEFAULT.group_size,
    max_new_tokens: Annotated[
        int, typer.Option(min=1, help="Completion length (GRPO max_completion_length).")
    ] = DEFAULT.max_new_tokens,
    out: Annotated[Path, typer.Option(help="Where bench.json and bench.md go.")] = Path(
        "results/bench"
    ),
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Time our DPO, GRPO and reward-model training against TRL's on the same work."""
    from harness.bench import BenchInputError, WorkMismatchError, run_bench, write_report

    cfg = BenchConfig(steps, repeats, warmup, threads, batch_size, group_size, max_new_tokens)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        report = run_bench(cfg, log=lambda line: err.print(f"[dim]{escape(line)}[/]"))
    except (WorkMismatchError, BenchInputError) as exc:
        _fail(str(exc), BAD_INPUT)
    except Exception as exc:
        if debug:
            raise
        _fail(f"{type(exc).__name__}: {exc} (--debug shows the traceback)", INTERNAL_ERROR)
    json_path, md_path = write_report(report, out)
    _print(report)
    Console(highlight=False, soft_wrap=True).print(f"wrote {json_path} and {md_path}")


def _print(report: dict[str, Any]) -> None:
    from harness.bench import HEADERS, table_rows

    cfg, env = report["config"], report["environment"]
    title = (
        f"ours vs TRL, median of {cfg['repeats']} (samples/s); threads {env['torch_threads']}, "
        f"load {env['load_average_before'][0]:.2f} -> {env['load_average_after'][0]:.2f}"
    )
    table = Table(title=title)
    for header in HEADERS:
        table.add_column(header, justify="left" if header in ("bench", "unit", "note") else "right")
    for cells in table_rows(report):
        table.add_row(*(escape(c) for c in cells))
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = max(console.width, 120)  # a file or pipe: no wrapping of the table
    console.print(table)
    if env["trl_missing"]:
        console.print(f"[yellow]no TRL rows:[/] {escape(env['trl_missing'])}")


def register(app: typer.Typer) -> None:
    """Add ``bench`` to the ``harness`` app."""
    app.command("bench")(bench)

"""The ``harness bench`` command (``register(app)`` adds it).

Exit codes: 0 written, 2 bad input or ours and TRL did different work (``WorkMismatchError``),
1 an internal error. The table goes to stdout, errors to stderr as one line; tracebacks only with
``--debug``.
"""

from __future__ import annotations

import json
import tempfile
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from harness.bench.config import BenchConfig, BenchInputError, WorkMismatchError
from harness.bench.report import HEADERS, table_rows, write_report
from harness.cli.common import (
    BAD_INPUT,
    INTERNAL_ERROR,
    Debug,
    fail,
    print_rich_table,
    stderr,
    stdout,
)

DEFAULT = BenchConfig()


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


class ModelSize(str, Enum):
    tiny = "tiny"
    hundred_m = "100m"
    half_b = "0.5b"


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
    device: Annotated[
        Device | None,
        typer.Option(
            help="Instead: our DPO and GRPO steps (and MFU), hf and vLLM generation and a "
            "2-worker FSDP2 step on this device, on a model built from a config; writes "
            "device.json and device.md."
        ),
    ] = None,
    model: Annotated[
        ModelSize, typer.Option(help="With --device: the built model's size.")
    ] = ModelSize.half_b,
    debug: Debug = False,
) -> None:
    """Time our DPO, GRPO and reward-model training against TRL's on the same work."""
    problem = out_problem(out)
    if problem is not None:
        fail(problem, BAD_INPUT)
    if device is not None:
        _device_bench(device.value, model.value, steps, batch_size, out, debug)
        return
    from harness.bench.run import run_bench  # deferred: transformers' model classes (~4 s)

    cfg = BenchConfig(steps, repeats, warmup, threads, batch_size, group_size, max_new_tokens)
    err = stderr()
    try:
        report = run_bench(cfg, log=lambda line: err.print(f"[dim]{escape(line)}[/]"))
    except (WorkMismatchError, BenchInputError) as exc:
        fail(str(exc), BAD_INPUT)
    except Exception as exc:
        if debug:
            raise
        fail(f"{type(exc).__name__}: {exc} (--debug shows the traceback)", INTERNAL_ERROR)
    try:
        json_path, md_path = write_report(report, out)
    except OSError as exc:  # the folder changed while the bench ran
        fail(f"--out: cannot write in {out} ({exc.strerror or exc})", BAD_INPUT)
    _print(report)
    stdout().print(f"wrote {json_path} and {md_path}")


def _device_bench(device: str, model: str, steps: int, batch: int, out: Path, debug: bool) -> None:
    from harness.bench.device import DeviceConfig, markdown, run_device_bench

    cfg = DeviceConfig(
        device=device, model=model, steps=min(steps, DeviceConfig.steps), batch=batch
    )
    stderr().print(f"[dim]bench --device {device}, model {model} ...[/]")
    try:
        report = run_device_bench(cfg)
    except ValueError as exc:
        fail(str(exc), BAD_INPUT)
    except Exception as exc:
        if debug:
            raise
        fail(f"{type(exc).__name__}: {exc} (--debug shows the traceback)", INTERNAL_ERROR)
    out.mkdir(parents=True, exist_ok=True)
    (out / "device.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "device.md").write_text(markdown(report))
    stdout().print(markdown(report))
    stdout().print(f"wrote {out / 'device.json'} and {out / 'device.md'}")


def out_problem(out: Path) -> str | None:
    """Why ``bench.json`` and ``bench.md`` could not be written under ``out``, found before the
    bench runs: a file in the way (``out`` or a folder above it), a folder that refuses a file.
    Nothing is left behind."""
    try:
        existing = next(p for p in (out, *out.parents) if p.exists())
        if not existing.is_dir():
            return f"--out: {existing} is a file, not a directory"
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        return f"--out: cannot write in {out} ({exc.strerror or exc})"
    for name in ("bench.json", "bench.md"):
        if (out / name).is_dir():
            return f"--out: {out / name} is a directory, where the report's file goes"
    return None


def _print(report: dict[str, Any]) -> None:
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
    console = stdout()
    print_rich_table(console, table)
    if env["trl_missing"]:
        console.print(f"[yellow]no TRL rows:[/] {escape(env['trl_missing'])}")


def register(app: typer.Typer) -> None:
    """Add ``bench`` to the ``harness`` app."""
    app.command("bench", short_help="Time our training loops against TRL's.")(bench)

"""The ``harness`` command line: ``validate``, ``run``, ``methods``, ``world build`` here;
``leaderboard`` and ``check`` from ``harness.cli.results``; ``bench`` from ``harness.cli.bench``;
``tune`` from ``harness.cli.tune``.

Exit codes: 0 success, 2 bad input (a suite that does not validate, a bad option), 1 an internal
error (``harness run``: some run failed; ``harness check``: a regression), 3 inconclusive
(``harness check``). Results go to stdout, errors to stderr; tracebacks only with ``--debug``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import harness
from harness.cli import bench as cli_bench
from harness.cli import method_check, tune
from harness.cli import results as cli_results
from harness.cli.common import (
    BAD_INPUT,
    Debug,
    fail,
    print_rich_table,
    print_table,
    reported,
    stderr,
    stdout,
)
from harness.core.errors import InputError
from harness.load.data import data_issues
from harness.run.cluster import check_before_start
from harness.run.preflight import (
    PreflightError,
    decide_offline,
    machine_findings,
    model_reasons,
    resource_problems,
    suite_models,
)
from harness.run.preflight import check as preflight_check
from harness.suite.checkpoints import checkpoint_rounds
from harness.suite.loader import SpecIssue, SuiteError, load_suite
from harness.suite.runs import check_only
from harness.suite.schema import Suite
from harness.world.card import load as load_card
from harness.world.card import markdown as card_markdown
from harness.world.config import WorldConfig, world_dir
from methods import REGISTRY, DuplicateMethodError

if TYPE_CHECKING:
    from harness.report.summary import Summary

app = typer.Typer(
    help="Train and evaluate LLM alignment methods from one suite spec.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: typer's rich help labels every flag <bool>
)


def _show_version(value: bool) -> None:
    if value:
        stdout().print(f"harness {harness.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Train and evaluate LLM alignment methods from one suite spec."""
    check_registry()


def check_registry() -> None:
    """Exit 2 naming both sources when two register one method name; warn of each method plugin
    that failed to load (the other methods still work)."""
    try:
        REGISTRY.check()
    except DuplicateMethodError as exc:
        fail(str(exc), BAD_INPUT)
    for plugin in REGISTRY.broken:
        stderr().print(
            f"[yellow]warning:[/] method plugin {escape(str(plugin))}; the other methods work",
            soft_wrap=True,
        )


Overrides = Annotated[
    list[str] | None,
    typer.Option(
        "--override",
        "-o",
        metavar="KEY=VALUE",
        help="Set a suite field before validation, e.g. -o seeds=[0] -o methods.dpo.params.beta=0.2"
        " (repeatable; list items by name or index).",
    ),
]
SuitePath = Annotated[Path, typer.Argument(metavar="SUITE", help="A suite YAML file.")]


# --- suites --------------------------------------------------------------------------------------


def load_or_exit(path: Path, overrides: list[str] | None, debug: bool) -> Suite:
    """The validated suite, or every problem on stderr and exit 2 (exit 1 on an internal error)."""
    try:
        suite = load_suite(path, overrides or [])
        issues = data_issues(suite, str(path))  # each local data file read through, as runs will
        issues += [  # each model path a hub id or a model folder (their listings only)
            SpecIssue(str(path), f"{field}.{sub}", given, why)
            for field, ref in suite_models(suite).items()
            for sub, given, why in model_reasons(ref)
        ]
        if issues:
            raise SuiteError(issues)
        return suite
    except SuiteError as exc:
        _report_issues(exc)
        if debug:
            stderr().print_exception()
        raise typer.Exit(BAD_INPUT) from None
    except Exception as exc:
        if debug:
            raise
        fail(f"internal error: {type(exc).__name__}: {exc} (--debug shows the traceback)")


def _report_issues(exc: SuiteError) -> None:
    err = stderr()
    count = len(exc.errors)
    err.print(f"[bold red]error:[/] invalid suite: {count} problem{'s' if count > 1 else ''}")
    for issue in exc.errors:
        given = f" [dim](given: {escape(issue.given)})[/]" if issue.given else ""
        where = f"{escape(issue.file)}: [bold]{escape(issue.field)}[/]"
        err.print(f"  {where}: {escape(issue.expected)}{given}")


def _models_line(suite: Suite) -> str:
    if suite.world is not None:
        return f"tiny world (seed {suite.world.seed}, cache key {suite.world.key()})"
    assert suite.models is not None
    return f"policy {suite.models.policy.path}, reward {suite.models.reward.path}"


def _print_summary(suite: Suite, path: Path) -> None:
    out = stdout()
    out.print(f"[bold green]valid:[/] {escape(str(path))} - suite [bold]{suite.name}[/]")
    out.print(f"  models:   {escape(_models_line(suite))}")
    out.print(f"  variants: {len(suite.methods)}")
    width = max(16, *(len(v.name) for v in suite.methods))  # swept names run long
    for variant in suite.methods:
        changed = variant.params.model_dump(exclude_defaults=True)
        params = ", ".join(f"{k}={v}" for k, v in changed.items()) or "defaults"
        if variant.lora is not None:
            params += f"; lora r={variant.lora.r}, alpha={variant.lora.alpha}"
        out.print(f"    {variant.name:<{width}} {variant.method:<10} {escape(params)}")
    out.print(f"  seeds:    {', '.join(map(str, suite.seeds))}")
    runs = len(suite.methods) * len(suite.seeds)
    out.print(f"  runs:     {len(suite.methods)} variants x {len(suite.seeds)} seeds = {runs}")
    judges = ", ".join(suite.eval.judges)
    out.print(f"  judges:   {judges} (primary: {suite.eval.primary_judge})")
    ev = suite.eval
    rounds = checkpoint_rounds(ev.checkpoints, suite.budget.rounds)
    if rounds:
        after = ", ".join(map(str, rounds))
        out.print(f"  checkpoints: after rounds {after}, on {ev.checkpoint_prompts} eval prompts")
    out.print(f"  hash:     {suite.hash()[:16]}")


@app.command(short_help="Check a suite; show what it would run and whether it can run here.")
def validate(suite: SuitePath, override: Overrides = None, debug: Debug = False) -> None:
    """Check a suite (after overrides) and print what it would run; exit 2 listing every problem.

    A valid suite exits 0, and a section below says whether this machine can run it: a run's CPUs
    and GPUs against this machine, the hub (reachable or offline) and every model and dataset
    through it, the optional extras the suite uses; every reason it cannot, at once.
    """
    loaded = load_or_exit(suite, override, debug)
    _print_summary(loaded, suite)
    _print_machine(loaded)


def _print_machine(suite: Suite) -> None:
    out = stdout()
    findings = machine_findings(suite)
    out.print("\nThis machine:")
    for f in findings:
        mark = "[green]ok[/]  " if f.ok else "[red]no[/]  "
        out.print(f"  {mark} {f.topic}: {escape(f.text)}")
    against = [f for f in findings if not f.ok]
    if against:
        reasons = f"{len(against)} reason{'s' if len(against) > 1 else ''} above"
        out.print(f"[bold red]cannot run here:[/] {reasons} (the suite itself is valid)")
    else:
        out.print("[bold green]can run here[/]")


# --- run -----------------------------------------------------------------------------------------


@app.command(short_help="Train and evaluate a suite; resume what is done.")
def run(
    suite: SuitePath,
    override: Overrides = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", metavar="VARIANT", help="Run only these variants.")
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster address (default: $RAY_ADDRESS or a local pool)."),
    ] = None,
    fresh: Annotated[bool, typer.Option(help="Rerun every run, even those already done.")] = False,
    out: Annotated[Path, typer.Option(help="Results root; the suite writes to OUT/<name>.")] = Path(
        "results"
    ),
    num_gpus: Annotated[
        int | None,
        typer.Option(help="GPUs a local pool declares (default: those detected).", hidden=True),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="At the end, print the report's paths only.")
    ] = False,
    debug: Debug = False,
) -> None:
    """Train and evaluate every variant x seed of a suite on a Ray pool; resume what is done.

    Exit 0 when every run succeeded, 1 when some failed, 2 on bad input.
    """
    loaded = load_or_exit(suite, override, debug)
    try:
        check_only(loaded, only)
        check_out(out / loaded.name)
    except ValueError as exc:
        fail(str(exc), BAD_INPUT)
    try:  # the pool's problems and the models' are reported together
        for res in loaded.run_resources():
            check_before_start(res, address, num_gpus)
        pool_problem = None
    except ValueError as exc:  # every resource this machine lacks, not only the first
        every = loaded.run_resources()
        lacking = list(
            dict.fromkeys(p for r in every for p in resource_problems(r, address, num_gpus))
        )
        pool_problem = (
            "\n".join(["this machine cannot run the suite:", *(f"  - {p}" for p in lacking)])
            if lacking
            else str(exc)
        )
    _preflight(loaded, debug, pool_problem)
    from harness.run.runner import run_suite  # deferred past the checks: Ray, transformers (~5 s)

    out_console = stdout()
    with reported(debug, "interrupted: running tasks cancelled; finished runs are kept"):
        outcome = run_suite(loaded, out, only, fresh, address, out_console, num_gpus)
    done = len(outcome.results) - len(outcome.failed)
    if not quiet and outcome.summary is not None:
        print_ranking(out_console, outcome.summary)
    out_console.print(
        f"{done} run(s) done, {len(outcome.failed)} failed, {len(outcome.skipped)} resumed"
        f" - results in {outcome.out_dir}"
    )
    for name, path in outcome.paths.items():
        out_console.print(f"  {name:<17} {path}")
    raise typer.Exit(outcome.exit_code)


def print_ranking(out: Console, summary: Summary) -> None:
    """The suite's ranking in brief (``leaderboard.md`` has every column): a reader sees the
    answer without opening a file."""
    from harness.report.leaderboard import ranking_cells  # deferred: pandas and matplotlib

    title = f"Ranking (by {summary.judges.primary} win-rate; leaderboard.md has every column)"
    print_table(out, title, *ranking_cells(summary), left={1}, keys=2)


def check_out(folder: Path) -> None:
    """``InputError`` unless ``folder`` (``--out``/<suite>) is, or can be made, a writable
    directory: a file in the way, a read-only parent. Nothing is left behind."""
    try:
        existing = next(p for p in (folder, *folder.parents) if p.exists())
        if not existing.is_dir():
            raise InputError(f"--out: {existing} is a file, not a directory")
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        raise InputError(f"--out: cannot write in {folder} ({exc.strerror})") from None


def _preflight(suite: Suite, debug: bool, pool_problem: str | None = None) -> None:
    """Fail fast, before any training, when a model or dataset the suite names cannot be had
    (or ``pool_problem``, found before, says the pool cannot run it): every problem at once.
    Whether the hub is there is decided first, by the environment or one short probe."""
    offline_because = decide_offline(suite)
    try:
        preflight_check(suite, offline_because)
    except PreflightError as exc:
        if debug:
            raise
        fail("\n".join(p for p in (pool_problem, str(exc)) if p), BAD_INPUT)
    if pool_problem:
        fail(pool_problem, BAD_INPUT)


# --- methods -------------------------------------------------------------------------------------


@app.command("methods", short_help="List the methods, where they come from, their defaults.")
def list_methods() -> None:
    """List every registered alignment method (built in, or from the installed plugin package
    named with its version) with its default parameters."""
    table = Table(title="Registered methods", show_lines=True)
    table.add_column("method", style="bold", no_wrap=True)
    table.add_column("from", no_wrap=True)
    table.add_column("description")
    table.add_column("trains", no_wrap=True)
    table.add_column("default params", no_wrap=True)
    for name, method in REGISTRY.items():
        defaults = method.params().model_dump()
        params = "\n".join(f"{k}={v}" for k, v in defaults.items()) or "-"
        trains = "yes" if method.trains else "no"
        if method.needs_reference:
            trains += " (+ref)"
        table.add_row(name, REGISTRY.origin(name), method.description, trains, escape(params))
    print_rich_table(stdout(), table)


# --- world ---------------------------------------------------------------------------------------

world_app = typer.Typer(
    help="The embedded tiny world (offline, built on first use).", rich_markup_mode=None
)
app.add_typer(world_app, name="world")


@world_app.command("build", short_help="Build or install the tiny world.")
def world_build(
    seed: Annotated[int, typer.Option(help="Seed of the world.")] = 0,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Cache root (default: $HARNESS_CACHE or ~/.cache/alignment-harness)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Build here even if cached or shipped.")
    ] = False,
    debug: Debug = False,
) -> None:
    """Install (the shipped default world), find in the cache, or build the tiny world; print its
    card. With --force the world is built on this machine and compared with the shipped one."""
    from harness.builder import store  # deferred: transformers' models (~4 s)
    from harness.builder.build import build_world, ensure_world

    if seed < 0:
        fail(f"--seed must be >= 0, got {seed}", BAD_INPUT)
    config = WorldConfig(seed=seed)
    out = stdout()
    path = world_dir(config, cache_dir)
    shipped = store.shipped(config)
    with reported(debug, "interrupted: the next build resumes where this one stopped"):
        if force:
            check_out(path)
            out.print(f"building the tiny world (seed {seed}) into {path}")
            build_world(config, path, log=lambda line: out.print(f"  {escape(line)}"))
            built = store.recorded_hash(path)
            if shipped is not None:
                same = built == store.recorded_hash(shipped)
                verdict = "the same as" if same else "different from"
                out.print(f"content hash {built}: {verdict} the world this package ships")
            else:
                out.print(f"content hash {built} (this package ships no world for this config)")
        else:
            cached = path.exists() and store.verify(path) is None
            if not cached:
                check_out(path)
            ensure_world(config, cache_dir, log=lambda line: out.print(f"  {escape(line)}"))
            how = "cached" if cached else ("installed from the package" if shipped else "built")
            out.print(f"{how}: {path}")
        out.print(card_markdown(load_card(path)))


# --- results and bench: `harness leaderboard`, `harness check`, `harness bench` -----------------

cli_results.register(app)
cli_bench.register(app)
tune.register(app)
method_check.register(app)

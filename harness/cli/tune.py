"""``harness tune RESULTS_DIR``: the tuning procedure's verdict. For each method of a tuning
suite (``suites/tune.yaml``: every trained method over one learning-rate grid, through
``sweep:``), the value of the swept parameter whose variant has the best **held-out** judge's
win-rate, mean over seeds.

The judge is never ``proxy`` (the reward trained on) nor ``gold`` (the world's truth, kept for
the test): by default the first other judge of the suite (the world's ``heldout``). A method
whose variants differ in more than the tuned parameter, or that has fewer trials than another,
is flagged: its choice is not one procedure's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from harness.cli.common import BAD_INPUT, Debug, fail, print_table, stdout
from harness.core.judges import GOLD, PROXY


class TuneError(ValueError):
    """A results directory the tuning verdict cannot be read from."""


@dataclass(frozen=True)
class Trial:
    method: str
    variant: str
    value: Any  # the tuned parameter's value
    mean: float  # the judge's win-rate, mean over seeds
    ci_low: float
    ci_high: float
    seeds: int


@dataclass(frozen=True)
class Choice:
    method: str
    best: Trial
    trials: list[Trial]  # every value tried, in the suite's order
    other_differences: list[str]  # parameters besides the tuned one that differ between trials


def selection_judge(judges: list[str], asked: str | None) -> str:
    """The judge the choice is made on: ``asked``, else the first judge neither proxy nor gold."""
    if asked is not None:
        if asked in (PROXY, GOLD):
            raise TuneError(f"'{asked}' cannot select: tuning selects on a held-out judge")
        if asked not in judges:
            raise TuneError(f"no judge '{asked}' in the results (judges: {', '.join(judges)})")
        return asked
    held_out = [j for j in judges if j not in (PROXY, GOLD)]
    if not held_out:
        raise TuneError(
            f"no held-out judge to select on (judges: {', '.join(judges)}; proxy is trained on"
            " and gold is kept for the test)"
        )
    return held_out[0]


def choose(results_dir: Path, param: str, judge: str | None) -> tuple[str, list[Choice]]:
    """The selection judge and, per trained method with variants setting ``param``, its trials
    and the best one (highest mean win-rate; the first in suite order on a tie)."""
    from harness.report.results import aggregate, read_table  # deferred: pandas

    judges, variants = read_suite_json(results_dir)
    long_df, _ = read_table(results_dir)
    judge = selection_judge(judges, judge)
    agg = aggregate(long_df[long_df["metric"] == f"winrate.{judge}"]).set_index("variant")
    by_method: dict[str, list[tuple[dict[str, Any], Trial]]] = {}
    for variant in variants:
        params, name = variant["params"], variant["name"]
        if param not in params or name not in agg.index:
            continue
        row = agg.loc[name]
        mean, low, high = (float(row[c]) for c in ("mean", "ci_low", "ci_high"))
        trial = Trial(variant["method"], name, params[param], mean, low, high, int(row["seeds"]))
        by_method.setdefault(variant["method"], []).append((params, trial))
    if not by_method:
        raise TuneError(f"{results_dir}: no finished variant sets '{param}'")
    return judge, [_choice(method, pairs, param) for method, pairs in by_method.items()]


def read_suite_json(results_dir: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The judges and variants of ``results_dir/suite.json``; ``TuneError`` naming the file and
    what is wrong when it is missing, unreadable, not JSON, or not shaped as a suite's dump
    (``eval.judges`` a list of names; ``methods`` a list of objects, each with a ``name`` and a
    ``method`` and, if any, ``params`` an object)."""
    file = results_dir / "suite.json"
    if not file.is_file():
        raise TuneError(f"{results_dir}: no suite.json (is this a results directory?)")
    try:
        dump = json.loads(file.read_bytes())
    except OSError as exc:
        raise TuneError(f"{file}: cannot be read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise TuneError(f"{file}: not JSON ({exc})") from None
    if not isinstance(dump, dict):
        raise TuneError(f"{file}: expected a JSON object (a suite), found {_kind(dump)}")
    evaluation = dump.get("eval") or {}
    judges = evaluation.get("judges") if isinstance(evaluation, dict) else None
    if not isinstance(judges, list) or not all(isinstance(j, str) for j in judges):
        raise TuneError(f"{file}: eval.judges: expected a list of judge names")
    variants = dump.get("methods")
    if not isinstance(variants, list):
        raise TuneError(f"{file}: methods: expected a list of variants, found {_kind(variants)}")
    checked = []
    for i, variant in enumerate(variants):
        if not isinstance(variant, dict):
            raise TuneError(f"{file}: methods[{i}]: expected an object, found {_kind(variant)}")
        for key in ("name", "method"):
            if not isinstance(variant.get(key), str):
                raise TuneError(f"{file}: methods[{i}].{key}: expected a string")
        params = variant.get("params") or {}
        if not isinstance(params, dict):
            raise TuneError(f"{file}: methods[{i}].params: expected an object")
        checked.append({**variant, "params": params})
    return judges, checked


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "nothing"
    return names.get(type(value), "a number" if isinstance(value, int | float) else "a value")


def _choice(method: str, pairs: list[tuple[dict[str, Any], Trial]], param: str) -> Choice:
    trials = [t for _, t in pairs]
    best = max(trials, key=lambda t: -math.inf if math.isnan(t.mean) else t.mean)
    keys = sorted({k for p, _ in pairs for k in p} - {param})
    differ = [k for k in keys if len({json.dumps(p.get(k), sort_keys=True) for p, _ in pairs}) > 1]
    return Choice(method, best, trials, differ)


def tune(
    results_dir: Annotated[
        Path, typer.Argument(metavar="RESULTS_DIR", help="results/<suite> of a tuning suite.")
    ],
    param: Annotated[str, typer.Option(help="The swept parameter.")] = "lr",
    judge: Annotated[
        str | None,
        typer.Option(help="Held-out judge to select on (default: the first not proxy or gold)."),
    ] = None,
    debug: Debug = False,
) -> None:
    """For each method, the value of PARAM whose variant has the best held-out win-rate."""
    from harness.report.results import ResultsError  # deferred: pandas

    try:
        judge_name, choices = choose(results_dir, param, judge)
    except (TuneError, ResultsError, OSError, ValueError, KeyError) as exc:
        if debug:
            raise
        fail(str(exc), BAD_INPUT)
    _print(choices, judge_name, param)


def _print(choices: list[Choice], judge: str, param: str) -> None:
    headers = ["method", f"best {param}", f"win-rate {judge}", "seeds", "trials", "every trial"]
    rows = []
    most = max(len(c.trials) for c in choices)
    for c in choices:
        b = c.best
        interval = f"{b.mean:.3f} [{b.ci_low:.3f}, {b.ci_high:.3f}]"
        every = ", ".join(f"{_value(t.value)}: {t.mean:.3f}" for t in c.trials)
        rows.append([c.method, _value(b.value), interval, str(b.seeds), str(len(c.trials)), every])
    out = stdout()
    print_table(
        out, f"Tuning: {param} by {judge} win-rate (mean over seeds)", headers, rows, {0, 5}
    )
    for c in choices:
        if len(c.trials) < most:
            out.print(f"[bold yellow]warning:[/] {c.method}: {len(c.trials)} trials, others {most}")
        if c.other_differences:
            out.print(
                f"[bold yellow]warning:[/] {c.method}'s trials also differ in"
                f" {', '.join(c.other_differences)}"
            )


def _value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def register(app: typer.Typer) -> None:
    """Add ``tune`` to the ``harness`` app."""
    app.command("tune", short_help="Pick each method's best value of a parameter.")(tune)

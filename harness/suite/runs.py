"""Runs: what one (variant, seed) of a suite is, and what it produced.

``RunSpec`` and ``RunResult`` are frozen, JSON-serialisable values; nothing else crosses a process
boundary. ``run_id`` is a hash of everything that determines the run's outcome, so a finished run
is recognised (and skipped) on the next ``harness run`` of the same suite.

Metrics of a result are rows of the long table (see ``harness/report/results.py``)::

    winrate.<judge>          win-rate against the reference, 95% bootstrap interval, n prompts
    reward.<judge>           mean judge score of the policy's responses
    kl                       Monte-Carlo KL(policy || reference), summed log-ratio per response
    length                   mean response tokens
    distinct_1, distinct_2   distinct n-grams / all n-grams over the responses
    capability.<task>        lm-eval accuracy, +-1.96 stderr
    capability_delta.<task>  accuracy minus the base model's, +-1.96 combined stderr

A strategy answering from a pool (best-of-n) also has ``bon_curve``: per n = 1, 2, 4... and
metric (``reward.<judge>``, ``winrate.<judge>``) the expected best-of-n value estimated from the
pool, with its interval and the KL bound (``harness.evaluation.bon``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.suite.resolve import Resolved
from harness.suite.schema import Suite
from harness.suite.settings import Resources

RESULT_VERSION = 1


@dataclass(frozen=True)
class MetricRow:
    metric: str
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None


@dataclass(frozen=True)
class RunSpec:
    resolved: Resolved  # the suite, resolved once by the driver; tasks never validate it again
    suite_hash: str
    variant: str
    method: str
    seed: int
    run_id: str

    @property
    def label(self) -> str:
        return f"{self.variant}/seed{self.seed}"

    @property
    def resources(self) -> Resources:
        """What this run reserves on the pool (the suite's, or its variant's own)."""
        return self.resolved.suite.resources_of(self.variant)


@dataclass(frozen=True)
class RunResult:
    run_id: str
    suite: str
    variant: str
    method: str
    seed: int
    status: str  # "done" | "failed"
    metrics: list[MetricRow] = field(default_factory=list)
    costs: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    attempts: int = 1
    rounds: list[dict[str, float]] = field(default_factory=list)  # per round: means of its steps
    samples: dict[str, list[Any]] = field(default_factory=dict)  # every judged sample, columns
    # the policy evaluated during training (harness.evaluation.checkpoints); older files lack it
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    # best-of-n per n (harness.evaluation.bon)
    bon_curve: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, spec: RunSpec, status: str, **fields: Any) -> RunResult:
        """The result of ``spec`` with ``status`` and any other fields given."""
        return cls(
            run_id=spec.run_id,
            suite=spec.resolved.suite.name,
            variant=spec.variant,
            method=spec.method,
            seed=spec.seed,
            status=status,
            **fields,
        )

    def to_json(self) -> str:
        return json.dumps({"version": RESULT_VERSION, **asdict(self)}, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunResult:
        """The result in ``text``; ``RunFileError`` (a ``ValueError``) naming the field that is
        wrong when it is not one. Every field's type is checked here (``check_run``), so what is
        read is what the tables, plots and trackers expect."""
        data = json.loads(text)
        check_run(data)
        data.pop("version", None)
        data["metrics"] = [MetricRow(**m) for m in data.get("metrics", [])]
        return cls(**data)


# --- the run file's schema ----------------------------------------------------------------------


class RunFileError(ValueError):
    """A run file that does not hold a run result; the message names the field."""


class _Wrong(Exception):
    def __init__(self, problem: str, where: str = "") -> None:
        self.problem, self.where = problem, where


Check = Callable[[Any], None]  # raises _Wrong when the value is not of its type


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if _number(value):
        return "a number"
    names: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}
    return names.get(type(value), type(value).__name__)


def _is(test: Callable[[Any], bool], expected: str) -> Check:
    def check(value: Any) -> None:
        if not test(value):
            raise _Wrong(f"expected {expected}, not {_kind(value)}")

    return check


def _inside(where: str, test: Check, value: Any) -> None:
    try:
        test(value)
    except _Wrong as wrong:
        raise _Wrong(wrong.problem, where + wrong.where) from None


def _mapping(values: Check) -> Check:
    """An object whose every value passes ``values``."""

    def check(value: Any) -> None:
        OBJECT(value)
        for key, item in value.items():
            _inside(f".{key}", values, item)

    return check


def _list(items: Check) -> Check:
    """A list whose every item passes ``items``."""

    def check(value: Any) -> None:
        if not isinstance(value, list):
            raise _Wrong(f"expected a list, not {_kind(value)}")
        for i, item in enumerate(value):
            _inside(f"[{i}]", items, item)

    return check


def _record(fields: dict[str, Check], required: tuple[str, ...], rest: Check | None) -> Check:
    """An object with the ``required`` keys, each key of ``fields`` passing its check and any
    other key passing ``rest`` (no other key allowed when ``rest`` is None)."""

    def check(value: Any) -> None:
        OBJECT(value)
        missing = [k for k in required if k not in value]
        if missing:
            raise _Wrong(f"missing {', '.join(map(repr, missing))}")
        for key, item in value.items():
            test = fields.get(key, rest)
            if test is None:
                raise _Wrong(f"unknown key {key!r}")
            _inside(f".{key}", test, item)

    return check


def _columns(value: Any) -> None:
    """The columns of one table: an object of equally long lists of scalars."""
    _mapping(_list(SCALAR))(value)
    lengths = {name: len(column) for name, column in value.items()}
    if len(set(lengths.values())) > 1:
        found = ", ".join(f"{k!r}: {n}" for k, n in lengths.items())
        raise _Wrong(f"expected columns of one length, not {found}")


def _status(value: Any) -> None:
    if value not in ("done", "failed"):
        raise _Wrong(f"expected 'done' or 'failed', not {value!r}")


STRING = _is(lambda v: isinstance(v, str), "a string")
OPT_STRING = _is(lambda v: v is None or isinstance(v, str), "a string or null")
INTEGER = _is(_integer, "an integer")
OPT_INTEGER = _is(lambda v: v is None or _integer(v), "an integer or null")
NUMBER = _is(_number, "a number")
OPT_NUMBER = _is(lambda v: v is None or _number(v), "a number or null")
SCALAR = _is(lambda v: v is None or isinstance(v, str | int | float), "a string, number or null")
OBJECT = _is(lambda v: isinstance(v, dict), "an object")

METRIC = _record(
    {
        "metric": STRING,
        "value": NUMBER,
        "ci_low": OPT_NUMBER,
        "ci_high": OPT_NUMBER,
        "n": OPT_INTEGER,
    },
    ("metric", "value"),
    None,
)
ROUND = _record({"round": INTEGER}, ("round",), NUMBER)  # the round's means of its steps
CHECKPOINT = _record(  # harness.evaluation.checkpoints
    {"round": INTEGER, "costs": _mapping(NUMBER), "answers": _columns},
    ("round", "answers"),
    SCALAR,
)
BON_FIELDS = {
    "n": INTEGER,
    "kl_bound": NUMBER,
    "metric": STRING,
    "value": NUMBER,
    "ci_low": OPT_NUMBER,
    "ci_high": OPT_NUMBER,
    "prompts": INTEGER,
}
BON_POINT = _record(BON_FIELDS, tuple(BON_FIELDS), None)  # harness.evaluation.bon.curve
# harness.run.provenance, the data's reports, anything else a scalar (a column of the run table)
PROVENANCE = _record({"packages": _mapping(OPT_STRING), "data": OBJECT}, (), SCALAR)

# every field a run file may hold, with its type: RunResult's fields and the file's version
RUN_FILE: dict[str, Check] = {
    "version": INTEGER,
    "run_id": STRING,
    "suite": STRING,
    "variant": STRING,
    "method": STRING,
    "seed": INTEGER,
    "status": _status,
    "metrics": _list(METRIC),
    "costs": _mapping(NUMBER),
    "provenance": PROVENANCE,
    "error": OPT_STRING,
    "traceback": OPT_STRING,
    "attempts": INTEGER,
    "rounds": _list(ROUND),
    "samples": _columns,
    "checkpoints": _list(CHECKPOINT),
    "bon_curve": _list(BON_POINT),
}
REQUIRED = ("run_id", "suite", "variant", "method", "seed", "status")


def check_run(data: Any) -> None:
    """``RunFileError`` naming the first field of ``data`` (a run file's JSON) that is missing,
    unknown or of the wrong type, e.g. ``field 'metrics[0].value': expected a number, not a
    string``."""
    if not isinstance(data, dict):
        raise RunFileError(f"a run file holds an object, not {_kind(data)}")
    missing = [name for name in REQUIRED if name not in data]
    if missing:
        raise RunFileError(f"field {missing[0]!r} is missing")
    for name, value in data.items():
        test = RUN_FILE.get(name)
        if test is None:
            raise RunFileError(f"field {name!r} is not a field of a run file")
        try:
            test(value)
        except _Wrong as wrong:
            raise RunFileError(f"field '{name}{wrong.where}': {wrong.problem}") from None


def _run_content(suite: Suite, variant: str, seed: int) -> dict[str, Any]:
    """What determines a run's outcome: everything but the other variants, seeds, resources and
    tracking."""
    dump = suite.model_dump(mode="json", exclude={"tracking"})
    dump.pop("resources")
    dump.pop("seeds")
    dump["train"].pop("lora", None)  # the suite's LoRA is in each trained variant's own `lora`
    dump["methods"] = [m for m in dump["methods"] if m["name"] == variant]
    for m in dump["methods"]:
        m.pop("resources", None)  # where a run is placed is not what it computes
    return {"suite": dump, "seed": seed, "result_version": RESULT_VERSION}


def run_id(suite: Suite, variant: str, seed: int) -> str:
    blob = json.dumps(_run_content(suite, variant, seed), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def check_only(suite: Suite, only: list[str] | None) -> None:
    """``ValueError`` naming the variants of ``only`` that ``suite`` does not have."""
    names = [v.name for v in suite.methods]
    unknown = sorted(set(only or []) - set(names))
    if unknown:
        raise ValueError(f"unknown variant(s) {', '.join(unknown)}; suite has {', '.join(names)}")


def expand(resolved: Resolved, only: list[str] | None = None) -> list[RunSpec]:
    """One RunSpec per (variant, seed), in suite order, each carrying ``resolved``; ``only`` keeps
    the named variants."""
    suite = resolved.suite
    check_only(suite, only)
    suite_hash = suite.hash()
    return [
        RunSpec(resolved, suite_hash, v.name, v.method, seed, run_id(suite, v.name, seed))
        for v in suite.methods
        if not only or v.name in only
        for seed in suite.seeds
    ]

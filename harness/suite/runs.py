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
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.suite.resolve import Resolved
from harness.suite.schema import Suite

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
    # the policy evaluated during training (harness.evaluation.checkpoints); absent from older run
    # files
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    bon_curve: list[dict[str, Any]] = field(
        default_factory=list
    )  # best-of-n per n (harness.evaluation.bon)

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
        """The result in ``text``; ``ValueError`` naming what is wrong when it is not one."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"a run file holds an object, not {type(data).__name__}")
        data.pop("version", None)
        for name, kind in _FIELD_TYPES.items():
            if not isinstance(data.get(name), kind):
                raise ValueError(f"field {name!r}: expected {kind.__name__}")
        if data["status"] not in ("done", "failed"):
            raise ValueError(f"field 'status': 'done' or 'failed', not {data['status']!r}")
        metrics = data.get("metrics", [])
        if not isinstance(metrics, list) or not all(isinstance(m, dict) for m in metrics):
            raise ValueError("field 'metrics': expected a list of objects")
        data["metrics"] = [MetricRow(**m) for m in metrics]
        points = data.get("checkpoints", [])
        if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
            raise ValueError("field 'checkpoints': expected a list of objects")
        for row in data["metrics"]:
            if not isinstance(row.metric, str) or not isinstance(row.value, int | float):
                raise ValueError(f"metric {row.metric!r}: expected a name and a number")
        return cls(**data)


_FIELD_TYPES = {"run_id": str, "suite": str, "variant": str, "method": str, "seed": int}
_FIELD_TYPES["status"] = str


def _run_content(suite: Suite, variant: str, seed: int) -> dict[str, Any]:
    """What determines a run's outcome: everything but the other variants, seeds, resources and
    tracking."""
    dump = suite.model_dump(mode="json", exclude={"tracking"})
    dump.pop("resources")
    dump.pop("seeds")
    dump["train"].pop("lora", None)  # the suite's LoRA is in each trained variant's own `lora`
    dump["methods"] = [m for m in dump["methods"] if m["name"] == variant]
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

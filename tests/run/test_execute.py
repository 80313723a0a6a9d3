"""What ``execute_run`` keeps of training besides the metrics: per-round means of each step's
statistics."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.builder import build
from harness.run.execute import RoundLog, execute_run, phase_seconds
from harness.run.shared import compute_shared
from harness.suite import resolve as resolve_module
from harness.suite import schema
from harness.suite.loader import load_suite
from harness.suite.resolve import resolve
from harness.suite.runs import expand
from methods.base import Progress
from tests.conftest import REPO

TINY = REPO / "suites" / "tiny.yaml"


def test_round_log_keeps_the_mean_of_each_statistic_per_round() -> None:
    log = RoundLog()
    log.add(Progress(0, 0, 1.0, 0.5, {"loss": 1.0, "clipfrac": 0.0}))
    log.add(Progress(0, 1, 3.0, 0.7, {"loss": 3.0, "clipfrac": 0.5}))
    log.add(Progress(1, 2, 2.0, None, {"loss": 2.0, "kl": 0.1}))
    first, second = log.rounds()
    assert first == {
        "round": 0,
        "steps": 2,
        "mean_reward": pytest.approx(0.6),
        "loss": 2.0,
        "clipfrac": 0.25,
    }
    assert second == {"round": 1, "steps": 1, "loss": 2.0, "kl": 0.1}  # no reward: none kept
    assert RoundLog().rounds() == []


def test_phase_seconds_split_a_run_by_when_each_phase_began() -> None:
    """Setup until the first phase, training until evaluation, then the evaluation's own steps;
    a run that trains nothing has no training time."""
    steps = {"answer": 3.0, "kl": 1.0, "judge": 2.0, "capability": 0.5}
    trained = phase_seconds(10.0, {"training": 12.0, "evaluating": 20.0, "capability": 26.0}, steps)
    assert trained == {
        "setup_seconds": 2.0,
        "train_seconds": 8.0,
        "answer_seconds": 3.0,
        "kl_seconds": 1.0,
        "judge_seconds": 2.0,
        "capability_seconds": 0.5,
    }
    untrained = phase_seconds(10.0, {"evaluating": 11.5}, {"answer": 3.0})
    assert untrained == {"setup_seconds": 1.5, "answer_seconds": 3.0}


def test_tasks_neither_validate_nor_resolve_the_suite(
    tiny_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver resolves the suite once; the shared task and a run's task receive the value.
    From the moment the specs exist, validating a suite (its wrap validator's sweep expansion) or
    resolving one (``resolve``'s data step) or ensuring the world fails the test."""
    small = ["seeds=[0]", "budget.rounds=1", "budget.prompts_per_round=4", "eval.num_prompts=8"]
    small += ["eval.samples_per_prompt=1", "eval.lm_eval.tasks=[]", "eval.bootstrap=100"]
    (spec,) = expand(resolve(load_suite(TINY, small)), ["raft"])

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a task validated or resolved the suite again")

    monkeypatch.setattr(schema, "expand_methods", refuse)
    monkeypatch.setattr(resolve_module, "_data", refuse)
    monkeypatch.setattr(build, "ensure_world", refuse)
    shared = compute_shared(spec.resolved)
    result = execute_run(spec, tmp_path / "run", shared)
    assert result.status == "done", f"{result.error}\n{result.traceback}"
    assert result.suite == spec.resolved.suite.name and result.variant == "raft"

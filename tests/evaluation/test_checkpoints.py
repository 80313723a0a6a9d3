"""Checkpoint evaluation during training: the schedule, the hook of the shared round loop, a run
with checkpoints training the same policy as one without, and the curve tables and leaderboard
section built from its points."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import torch

from harness.evaluation.checkpoints import checkpoint_subset
from harness.suite.checkpoints import checkpoint_rounds
from harness.suite.loader import SuiteError, load_suite
from harness.suite.resolve import resolve
from harness.suite.runs import RunResult
from methods import common
from methods.base import Budget, Decoding, TrainContext
from tests.conftest import REPO

TINY = REPO / "suites" / "tiny.yaml"


def test_schedules() -> None:
    assert checkpoint_rounds("none", 8) == []
    assert checkpoint_rounds("every_round", 3) == [0, 1, 2, 3]
    assert checkpoint_rounds("log", 32) == [0, 1, 2, 3, 4, 6, 8, 11, 16, 23, 32]
    assert checkpoint_rounds([5, 2], 10) == [0, 2, 5, 10]  # 0 and the last always


def test_checkpoints_off_hash_the_suite_as_before() -> None:
    """A suite naming no checkpoints dumps no checkpoint fields: its hash and run ids stay."""
    off = load_suite(TINY, [])
    assert "checkpoints" not in off.model_dump(mode="json")["eval"]
    on = load_suite(TINY, ["eval.checkpoints=log"])
    assert on.model_dump(mode="json")["eval"]["checkpoint_prompts"] == 64
    assert on.hash() != off.hash()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("eval.checkpoints=sometimes", "none, every_round, log or a list of rounds"),
        ("eval.checkpoints=[1,true]", "item 1: a round is a whole number"),
        ("eval.checkpoints=[9]", "after round 9, but budget.rounds is 4"),
        ("eval.checkpoint_prompts=513", "at most eval.num_prompts (512)"),
    ],
)
def test_bad_checkpoint_settings_name_the_field(override: str, message: str) -> None:
    with pytest.raises(SuiteError, match=r"eval\.checkpoint") as info:
        load_suite(TINY, [override])
    assert message in str(info.value)


def test_the_subset_is_fixed_and_within_the_prompts() -> None:
    assert checkpoint_subset(100, 10) == checkpoint_subset(100, 10)
    assert len(set(checkpoint_subset(100, 10))) == 10 and max(checkpoint_subset(100, 10)) < 100
    assert checkpoint_subset(5, 10) == [0, 1, 2, 3, 4]


def _bare_ctx(calls: list[Any]) -> TrainContext:
    return TrainContext(
        method="m", policy=None, reference=None, tokenizer=None, reward=lambda p, r: None,  # type: ignore[arg-type,return-value]
        prompts=[f"p{i}" for i in range(8)], preferences=[], budget=Budget(2, 3, 1, 4),
        decoding=Decoding(), device=torch.device("cpu"), seed=0,
        checkpoint=lambda r: calls.append(("checkpoint", r)),
    )  # fmt: skip


def test_the_round_loop_checkpoints_before_the_first_round_and_after_each() -> None:
    calls: list[Any] = []
    ctx = _bare_ctx(calls)
    for round_, _ in common.rounds(ctx):
        calls.append(("train", round_))
    assert calls == [
        ("checkpoint", 0), ("train", 0), ("checkpoint", 1), ("train", 1),
        ("checkpoint", 2), ("train", 2), ("checkpoint", 3),
    ]  # fmt: skip
    assert ctx.costs.prompts == 6  # the prompts are still charged per round


def test_dpo_offline_rounds_are_checkpointed_too() -> None:
    """Offline DPO's rounds are its packed pairs, not ``common.rounds``: ``checkpointed`` wraps
    them, with the same calls."""
    calls: list[Any] = []
    ctx = _bare_ctx(calls)
    for item in common.checkpointed(ctx, ["a", "b"]):
        calls.append(("train", item))
    assert calls == [("checkpoint", 0), ("train", "a"), ("checkpoint", 1), ("train", "b"),
                     ("checkpoint", 2)]  # fmt: skip


def test_old_run_files_without_checkpoints_still_load() -> None:
    result = RunResult("id", "s", "v", "m", 0, "done")
    old = {k: v for k, v in asdict(result).items() if k != "checkpoints"}
    assert RunResult.from_json(json.dumps(old)).checkpoints == []
    with pytest.raises(ValueError, match="checkpoints"):
        RunResult.from_json(json.dumps({**old, "checkpoints": [1]}))


@pytest.mark.slow
def test_a_run_with_checkpoints_trains_the_same_policy(
    tiny_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RAFT (sampling from its own seeded generator every round) run without and with a
    checkpoint after every round: the same final parameters, the same final metrics and costs;
    the checkpoints come at rounds 0..R with the steps and samples spent by then."""
    import harness.run.execute as execute
    from harness.suite.runs import expand

    trained: list[dict[str, torch.Tensor]] = []
    evaluate = execute.evaluate_policy

    def keep(ctx: TrainContext, *args: Any, **kwargs: Any) -> Any:
        trained.append({n: p.detach().clone() for n, p in ctx.policy.named_parameters()})
        return evaluate(ctx, *args, **kwargs)

    monkeypatch.setattr(execute, "evaluate_policy", keep)
    small = ["seeds=[0]", "budget.rounds=2", "budget.prompts_per_round=4", "eval.num_prompts=8"]
    small += ["eval.samples_per_prompt=1", "eval.lm_eval.tasks=[]", "eval.bootstrap=100"]
    for variant in ("raft",):
        runs = []
        for extra in ([], ["eval.checkpoints=every_round", "eval.checkpoint_prompts=4"]):
            suite = load_suite(TINY, small + extra)
            spec = next(s for s in expand(resolve(suite)) if s.variant == variant)
            runs.append(execute.execute_run(spec, tmp_path / variant))
        without, with_ = runs
        assert without.status == with_.status == "done", with_.error
        before, after = trained[-2:]
        assert all(torch.equal(before[n], after[n]) for n in before)
        assert without.metrics == with_.metrics
        counters = {
            k: v
            for k, v in without.costs.items()
            if not k.endswith("_seconds") and k != "peak_memory_mb"  # clocks, not counters
        }
        assert counters == {k: with_.costs[k] for k in counters}  # checkpoints are not charged
        points = with_.checkpoints
        assert [p["round"] for p in points] == [0, 1, 2] and without.checkpoints == []
        assert points[0]["step"] == 0 and points[0]["kl"] == pytest.approx(0.0, abs=1e-6)
        assert points[-1]["step"] == with_.costs["optimizer_steps"]
        assert points[-1]["costs"]["samples"] == with_.costs["samples"]
        assert len(points[1]["answers"]["score.gold"]) == 4

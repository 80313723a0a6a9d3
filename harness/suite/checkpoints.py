"""When a run's policy is evaluated during training: the suite's ``eval.checkpoints``.

``none`` (the default: only the final policy is evaluated), ``every_round``, ``log`` (rounds
1, 2, 3, 4, 6, 8, 11, 16, 23, 32...: ``round(sqrt(2)^i)``, denser early where the policy moves
fastest) or a list of rounds. Rounds count finished training rounds: 0 is the base policy, the
budget's ``rounds`` the final one; both are always evaluated when any checkpoint is. Each
checkpoint is evaluated on ``eval.checkpoint_prompts`` of the eval prompts
(``harness.evaluation.checkpoints`` does it).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

MAX_CHECKPOINT_ROUND = 10_000  # spec_bounds.MAX_ROUNDS: a checkpoint is a round of the budget
DEFAULT_CHECKPOINT_PROMPTS = 64

Schedule = Literal["none", "every_round", "log"]
SCHEDULES = ("none", "every_round", "log")


def _schedule_or_rounds(value: Any) -> Any:
    """Checked here whole, so that a wrong value gets one error naming every form (not one per
    member of the union)."""
    if isinstance(value, str) and value in SCHEDULES:
        return value
    if not isinstance(value, list):
        raise PydanticCustomError(
            "checkpoints", "should be none, every_round, log or a list of rounds"
        )
    for i, r in enumerate(value):
        if type(r) is not int or not 0 <= r <= MAX_CHECKPOINT_ROUND:
            raise PydanticCustomError(
                "checkpoints",
                "item {i}: a round is a whole number from 0 to {m}, not {r}",
                {"i": i, "m": MAX_CHECKPOINT_ROUND, "r": repr(r)},
            )
    return value


Checkpoints = Annotated[
    Schedule | list[int],
    BeforeValidator(_schedule_or_rounds),
    Field(
        description="When to evaluate the policy during training: none, every_round, log "
        "(log-spaced rounds) or a list of rounds (0: the base policy); round 0 and the last "
        "round are added to any of them."
    ),
]
CheckpointPrompts = Annotated[
    int,
    Field(
        gt=0,
        le=1_000_000,
        description="Eval prompts each checkpoint is judged on: the same seeded subset of "
        "eval.num_prompts for every checkpoint and run.",
    ),
]


def checkpoint_rounds(checkpoints: Checkpoints, rounds: int) -> list[int]:
    """The rounds after which the policy is evaluated, ascending, for a budget of ``rounds``:
    none for ``none``; else the schedule's rounds up to ``rounds``, with 0 and ``rounds``."""
    if checkpoints == "none":
        return []
    if checkpoints == "every_round":
        chosen = set(range(rounds + 1))
    elif checkpoints == "log":
        chosen = {round(math.sqrt(2) ** i) for i in range(2 * int(math.log2(rounds)) + 2)}
    else:
        chosen = set(checkpoints)
    return sorted({0, rounds} | {r for r in chosen if r <= rounds})


def drop_when_off(eval_dump: dict[str, Any]) -> dict[str, Any]:
    """An ``eval`` dump without the checkpoint fields when checkpoints are off, so that a suite
    that names none hashes (and its runs are identified) as before they existed."""
    if eval_dump.get("checkpoints") == "none":
        eval_dump.pop("checkpoints", None)
        eval_dump.pop("checkpoint_prompts", None)
    return eval_dump


def cross_checks(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], Any, str]]:
    """Checkpoint rules across fields, on the raw suite mapping: a listed round within the
    budget's rounds, and no more checkpoint prompts than eval prompts."""
    ev, budget = data.get("eval"), data.get("budget")
    if not isinstance(ev, dict):
        return []
    issues: list[tuple[tuple[str | int, ...], Any, str]] = []
    rounds = budget.get("rounds") if isinstance(budget, dict) else None
    listed = ev.get("checkpoints")
    if isinstance(listed, list) and isinstance(rounds, int):
        for i, r in enumerate(listed):
            if isinstance(r, int) and r > rounds:
                msg = f"a checkpoint after round {r}, but budget.rounds is {rounds}"
                issues.append((("eval", "checkpoints", i), r, msg))
    n, total = ev.get("checkpoint_prompts"), ev.get("num_prompts", 128)
    if isinstance(n, int) and isinstance(total, int) and n > total:
        msg = f"at most eval.num_prompts ({total}): checkpoints are judged on a subset of them"
        issues.append((("eval", "checkpoint_prompts"), n, msg))
    return issues

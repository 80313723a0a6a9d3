"""Evaluation of a policy during training, at the rounds the suite's ``eval.checkpoints`` names.

``harness.run.execute`` hands a ``CheckpointEval`` to the training context as ``ctx.checkpoint``;
the shared round loop (``methods.common.checkpointed``) calls it after every round (and with 0
before the first), and it evaluates the policy at the chosen ones. At each it records a point (one
dict,
kept in ``RunResult.checkpoints``)::

    round            finished training rounds (0: the base policy)
    step             optimizer steps taken so far
    costs            a snapshot of the run's cost counters (samples, tokens, reward calls...):
                     the FLOPs at the checkpoint are priced from it
    kl               Monte-Carlo KL(policy || reference), as the final evaluation estimates it
    reward.<judge>   every judge's mean score of the policy's answers
    eval_seconds     what evaluating the checkpoint took (not the method's time)
    answers          per answer: prompt_id, cluster, sample, kl, score.<judge> (columns)

Every checkpoint judges the same seeded subset of the eval prompts (``eval.checkpoint_prompts``),
k answers each (``eval.samples_per_prompt``), drawn with the eval decoding from a generator
seeded from ``Stream.CHECKPOINT`` and the run's seed afresh at each checkpoint (common random
numbers: two checkpoints of one run differ by their policies, not their draws). It never touches the
training's random state (the global generators are restored after it, the training's own
generators are never drawn from), its forward passes and judge calls are not charged to the run,
and the policy's train/eval mode is restored: a run with checkpoints trains the same policy as
one without.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from harness.core.seeds import Stream, seed_for
from harness.evaluation.evaluate import EvalSetup, answer_kl_terms, judge_all, sampler
from harness.stats.estimates import sample_index
from methods.base import Responses, TrainContext
from methods.common import uncharged

UNTIMED = ("wall_seconds", "peak_memory_mb")  # set at the run's end: not counters of a point


def checkpoint_subset(n_prompts: int, k: int) -> list[int]:
    """Indices of the ``k`` eval prompts (of ``n_prompts``) the checkpoints judge: a seeded
    sample, ascending, the same for every run of every suite (all of them when ``k >= n``)."""
    return sorted(
        random.Random(seed_for(Stream.CHECKPOINT_PROMPTS)).sample(
            range(n_prompts), min(k, n_prompts)
        )
    )


def subset_setup(setup: EvalSetup, k: int) -> tuple[EvalSetup, list[int]]:
    """``setup`` cut to the checkpoint prompts, and their indices among the eval prompts."""
    index = checkpoint_subset(len(setup.prompts), k)
    clusters = [setup.clusters[i] for i in index] if setup.clusters else []
    subset = dataclasses.replace(
        setup,
        prompts=[setup.prompts[i] for i in index],
        hh_prompts=[setup.hh_prompts[i] for i in index],
        clusters=clusters,
    )
    return subset, index


@contextmanager
def kept_state(policy: Any, device: torch.device) -> Iterator[None]:
    """Inside: the policy in eval mode, no gradients, no forward pass charged to the run's costs
    (``methods.common.uncharged``); after: its mode and every global random generator (torch's,
    the device's, Python's, numpy's) as they were."""
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    was_training = policy.training
    with torch.random.fork_rng(devices=devices), torch.no_grad(), uncharged():
        policy.eval()
        try:
            yield
        finally:
            policy.train(was_training)
            random.setstate(py_state)
            np.random.set_state(np_state)


@dataclass
class CheckpointEval:
    """``ctx.checkpoint``: evaluates ``ctx.policy`` after each round in ``rounds`` on ``setup``
    (already cut to the checkpoint prompts, ``subset_setup``; ``prompt_ids`` their indices among
    the eval prompts); the points gather in ``points``."""

    ctx: TrainContext
    setup: EvalSetup
    rounds: frozenset[int]
    prompt_ids: list[int]
    points: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, round_: int) -> None:
        if round_ not in self.rounds:
            return
        start = time.perf_counter()
        with kept_state(self.ctx.policy, self.ctx.device):
            point = self.evaluate(round_)
        point["eval_seconds"] = time.perf_counter() - start
        self.points.append(point)

    def evaluate(self, round_: int) -> dict[str, Any]:
        ctx, setup = self.ctx, self.setup
        k = setup.samples_per_prompt
        draw = sampler(setup, seed_for(Stream.CHECKPOINT, ctx.seed))
        answers = Responses(draw(ctx.policy, setup.prompts, k))  # [n * k]
        terms, kl = answer_kl_terms(ctx, setup, answers, setup.prompts)
        judged = [p for p in setup.hh_prompts for _ in range(k)]
        scores = judge_all(setup.judges, judged, answers.samples.responses)  # judge -> [n * k]
        index = sample_index(len(setup.prompts), k, setup.clusters)
        index["prompt_id"] = [self.prompt_ids[i] for i in index["prompt_id"]]
        per_answer = terms if terms is not None else [float("nan")] * len(judged)
        costs = {name: value for name, value in vars(ctx.costs).items() if name not in UNTIMED}
        return {
            "round": round_,
            "step": ctx.costs.optimizer_steps,
            "costs": {name: float(value) for name, value in costs.items()},
            "kl": kl.value,
            **{f"reward.{j}": float(np.mean(s)) for j, s in scores.items()},
            "answers": {
                **index,
                "kl": [float(x) for x in per_answer],
                **{f"score.{j}": s for j, s in scores.items()},
            },
        }

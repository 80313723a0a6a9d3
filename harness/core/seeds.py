"""Every random stream the harness draws outside a method's training, derived in one place from a
purpose and, where the stream is a run's own, the run's seed.

A method trains with the run's seed itself (``TrainContext.seed``: its prompt order, its samples).
The evaluation draws from streams of its own, far from any training seed, so that evaluating a
policy never replays the draws it was trained on:

- ``REFERENCE``: the reference's answers, the same for every run of a suite (drawn once);
- ``POLICY``: a run's evaluation answers (seed s draws with ``POLICY + s``);
- ``KL``: a run's untempered samples for the KL estimate, when the evaluation is tempered;
- ``CHECKPOINT``: a run's answers at each checkpoint, seeded afresh at every one (common random
  numbers: two checkpoints of one run differ by their weights, not their draws);
- ``CHECKPOINT_PROMPTS``: which evaluation prompts the checkpoints judge, the same for every run;
- ``BOOTSTRAP``: every bootstrap interval of a result, fixed so intervals are reproducible.
"""

from __future__ import annotations

from enum import Enum


class Stream(Enum):
    REFERENCE = 1_000_003
    POLICY = 2_000_003
    KL = 3_000_003
    CHECKPOINT = 4_000_003
    CHECKPOINT_PROMPTS = 5_000_003
    BOOTSTRAP = 0


PER_RUN = frozenset({Stream.POLICY, Stream.KL, Stream.CHECKPOINT})


def seed_for(stream: Stream, run_seed: int | None = None) -> int:
    """The seed of ``stream``: offset by ``run_seed`` for a run's own streams (which need it),
    the stream's fixed seed otherwise (which takes none)."""
    if stream in PER_RUN:
        if run_seed is None:
            raise ValueError(f"{stream.name} is a run's own stream: it needs the run's seed")
        return stream.value + run_seed
    if run_seed is not None:
        raise ValueError(f"{stream.name} is the same for every run: it takes no run seed")
    return stream.value

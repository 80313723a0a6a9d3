"""What ``execute_run`` keeps of training besides the metrics: per-round means of each step's
statistics."""

from __future__ import annotations

import pytest

from harness.run.execute import RoundLog
from methods.base import Progress


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

"""Decisions the harness makes in one place: the default tolerance and what counts as a
regression (the judges' names and the default primary judge: ``harness.core.judges``). The suite
schema, the evaluation, the leaderboard and the gate all call these, so they cannot disagree."""

from __future__ import annotations

import math

DEFAULT_TOLERANCE = 0.05  # the largest accepted drop (a fraction: win-rate or accuracy)
MAX_TOLERANCE = 0.5  # beyond, no drop of a fraction in [0, 1] could be a regression: a gate off


def is_regression(
    baseline: float, candidate: float, candidate_high: float, tolerance: float
) -> bool:
    """A drop ``baseline - candidate`` larger than ``tolerance`` that the candidate's 95%
    interval supports (its upper end ``candidate_high`` lies below ``baseline``). With no
    interval (NaN ``candidate_high``) the drop alone decides. 1e-9 of slack: a drop exactly at
    the tolerance passes despite float error."""
    drop = baseline - candidate
    supported = math.isnan(candidate_high) or candidate_high < baseline
    return drop > tolerance + 1e-9 and supported


REGRESSION_MARK = "⚠"  # what the leaderboard's table and plots show where ``is_regression`` holds

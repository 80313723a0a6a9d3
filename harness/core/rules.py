"""Decisions the harness makes in one place: the default tolerance, the default primary judge,
and what counts as a regression. The suite schema, the evaluation, the leaderboard and the gate
all call these, so they cannot disagree."""

from __future__ import annotations

import math
from collections.abc import Sequence

DEFAULT_TOLERANCE = 0.05  # the largest accepted drop (a fraction: win-rate or accuracy)
MAX_TOLERANCE = 0.5  # beyond, no drop of a fraction in [0, 1] could be a regression: a gate off
PROXY = "proxy"  # the judge that is the training reward model


def default_primary_judge(judges: Sequence[str]) -> str | None:
    """The judge that ranks a leaderboard when none is named: the first that is not the
    training reward model (its win-rates are what a method optimised), else the first."""
    return next((j for j in judges if j != PROXY), judges[0] if judges else None)


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

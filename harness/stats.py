"""Statistics of the evaluation: pure functions over numbers (numpy / torch in, numbers out).

Win-rates with paired outcomes, means with seeded bootstrap intervals, Monte-Carlo KL, distinct-n,
and the capability rows of a run against the base model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from harness.capability import TaskScore
from harness.rules import is_regression
from harness.runs import MetricRow

Z95 = 1.96
ArrayLike = Any  # list[float] | np.ndarray | torch.Tensor, 1-D unless said otherwise


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a 95% interval over ``n`` units (prompts, responses or seeds);
    NaN endpoints mean the interval cannot be estimated."""

    value: float
    ci_low: float
    ci_high: float
    n: int

    def row(self, metric: str) -> MetricRow:
        """As a result row; a NaN interval endpoint becomes None."""
        return MetricRow(metric, self.value, _finite(self.ci_low), _finite(self.ci_high), self.n)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _array(values: ArrayLike) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def outcomes(policy_scores: ArrayLike, ref_scores: ArrayLike, tie_eps: float = 1e-6) -> np.ndarray:
    """Per prompt ``[N]``: 1.0 a win (the policy's score is higher by more than ``tie_eps``),
    0.0 a loss (lower by more than ``tie_eps``), 0.5 a tie. Their mean is the win-rate."""
    policy, ref = _array(policy_scores), _array(ref_scores)
    if policy.shape != ref.shape or policy.ndim != 1:
        raise ValueError(f"paired scores must be 1-D of one length: {policy.shape}, {ref.shape}")
    diff = policy - ref  # [N]
    return np.where(diff > tie_eps, 1.0, np.where(diff < -tie_eps, 0.0, 0.5))


def mean_with_ci(values: ArrayLike, n_boot: int = 1000, seed: int = 0) -> Estimate:
    """Mean of ``values [N]`` with a seeded percentile-bootstrap 95% interval: ``n_boot``
    resamples of the N units with replacement, all drawn at once (``[n_boot, N]`` indices)."""
    x = _array(values)
    if x.size == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, x.size, size=(n_boot, x.size))  # [B, N]
    means = x[index].mean(axis=1)  # [B]
    low, high = np.quantile(means, [0.025, 0.975])
    return Estimate(float(x.mean()), float(low), float(high), int(x.size))


def win_rate(
    policy_scores: ArrayLike,
    ref_scores: ArrayLike,
    n_boot: int = 1000,
    seed: int = 0,
    tie_eps: float = 1e-6,
) -> Estimate:
    """``(wins + ties / 2) / n`` over paired prompts, with a bootstrap 95% interval that
    resamples prompts (``mean_with_ci`` of ``outcomes``)."""
    return mean_with_ci(outcomes(policy_scores, ref_scores, tie_eps), n_boot, seed)


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct n-grams / all n-grams over the whitespace tokens of ``texts`` (n-grams never cross
    two texts; Li et al. 2016); 0.0 when there are none."""
    grams = [
        tuple(tokens[i : i + n])
        for tokens in (t.split() for t in texts)
        for i in range(len(tokens) - n + 1)
    ]
    return len(set(grams)) / len(grams) if grams else 0.0


def kl_estimate(
    logps: torch.Tensor,  # [N, T] the policy's log-probs of its own sampled tokens
    ref_logps: torch.Tensor,  # [N, T] the reference's log-probs of the same tokens
    mask: torch.Tensor,  # [N, T] 1 on real response tokens
    n_boot: int = 1000,
    seed: int = 0,
) -> Estimate:
    """Monte-Carlo KL(policy || reference): per response ``sum_t (logp_t - ref_logp_t)`` over real
    tokens, then the mean over responses with a bootstrap 95% interval."""
    per_response = ((logps.float() - ref_logps.float()) * mask).sum(dim=-1)  # [N]
    return mean_with_ci(per_response, n_boot, seed)


def capability_rows(
    base: dict[str, TaskScore], policy: dict[str, TaskScore], tolerance: float
) -> list[MetricRow]:
    """Per task of ``policy``: ``capability.<task>`` (acc +- 1.96 stderr),
    ``capability_delta.<task>`` (``acc_p - acc_b`` +- 1.96 ``sqrt(se_p^2 + se_b^2)``) and
    ``regression.<task>`` (1.0 or 0.0).

    Regression (``harness.rules.is_regression``, the rule of the leaderboard and the gate): the
    drop ``-delta`` is larger than the tolerance and the delta's interval lies below 0.
    """
    rows: list[MetricRow] = []
    for task, p in policy.items():
        if task not in base:
            raise ValueError(f"no base score for task '{task}' (base has {', '.join(base)})")
        b = base[task]
        delta = p.acc - b.acc
        se = math.sqrt(p.stderr**2 + b.stderr**2)
        acc = Estimate(p.acc, p.acc - Z95 * p.stderr, p.acc + Z95 * p.stderr, p.n)
        rows += [
            acc.row(f"capability.{task}"),
            Estimate(delta, delta - Z95 * se, delta + Z95 * se, p.n).row(
                f"capability_delta.{task}"
            ),
            MetricRow(
                f"regression.{task}",
                float(is_regression(0.0, delta, delta + Z95 * se, tolerance)),
                n=p.n,
            ),
        ]
    return rows

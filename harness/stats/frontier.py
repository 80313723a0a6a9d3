"""Statistics of reward against KL and compute: pure functions over numbers and tables.

- ``gao_fit``: the functional forms of Gao, Schulman & Hilton 2022 ("Scaling laws for reward
  model overoptimization"), with ``d = sqrt(KL(policy || reference))``::

      best-of-n   R(d) = d (alpha - beta d)
      RL          R(d) = d (alpha - beta log d)

  Both are linear in ``(alpha, beta)`` (bases ``d, -d^2`` and ``d, -d log d``), so the fit is
  ordinary least squares through the origin (``R(0) = 0``: reward is measured from the initial
  policy's), exact, no starting point, no iterations. R^2 is ``1 - SS_res / SS_tot`` with
  ``SS_tot`` about the mean of R (a form that fits worse than a flat line has R^2 < 0).
- ``standardise``: each judge's scores in standard deviations of the base policy's answers,
  from the base policy's mean, so that rewards of judges with different scales are comparable
  (the proxy-gold gap) and start at 0.
- ``band``: a mean over seeds with a 95% t-interval (one seed: a normal interval over answers).
- ``peak_drop``: the over-optimisation test of one variant's checkpoints, with the peak chosen on
  half of the prompts and the drop measured on the other half (a paired, hierarchical interval:
  ``harness.stats.paired.paired_difference``).
- ``best_within``: each variant's best checkpoint within a compute budget, chosen by one judge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats as sps

from harness.stats.estimates import Z95, ArrayLike, _array
from harness.stats.paired import Comparison, paired_difference

Form = Literal["bon", "rl"]
FORMS: dict[str, str] = {"bon": "R(d) = d(α − β·d)", "rl": "R(d) = d(α − β·log d)"}


@dataclass(frozen=True)
class GaoFit:
    """``R(d)`` of one ``form`` fitted to ``n`` points: ``alpha``, ``beta`` and R^2."""

    form: Form
    alpha: float
    beta: float
    r2: float
    n: int

    def predict(self, d: ArrayLike) -> np.ndarray:
        x = _array(d)
        return x * self.alpha - self.beta * _curvature(x, self.form)


def _curvature(d: np.ndarray, form: Form) -> np.ndarray:
    """The second basis: ``d^2`` (best-of-n) or ``d log d`` (RL; 0 at d = 0, its limit)."""
    if form == "bon":
        return d**2
    safe = np.where(d > 0, d, 1.0)
    return np.where(d > 0, d * np.log(safe), 0.0)


def gao_fit(d: ArrayLike, reward: ArrayLike, form: Form) -> GaoFit:
    """Least-squares ``alpha, beta`` of ``form`` through the points ``(d, reward)`` (``d >= 0``,
    NaN points dropped); NaN everywhere with fewer than 3 points or no spread in ``d``."""
    x, y = _array(d), _array(reward)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if (x < 0).any():
        raise ValueError("d = sqrt(KL) is never negative")
    basis = np.stack([x, -_curvature(x, form)], axis=1)  # [n, 2]
    if x.size < 3 or np.linalg.matrix_rank(basis) < 2:
        return GaoFit(form, math.nan, math.nan, math.nan, int(x.size))
    (alpha, beta), *_ = np.linalg.lstsq(basis, y, rcond=None)
    residual = y - basis @ np.array([alpha, beta])
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((residual**2).sum()) / total if total > 0 else math.nan
    return GaoFit(form, float(alpha), float(beta), r2, int(x.size))


def sqrt_kl(kl: ArrayLike) -> np.ndarray:
    """``d = sqrt(KL)``; a Monte-Carlo KL estimate below 0 (noise around a true KL near 0) is
    taken as 0."""
    return np.sqrt(np.clip(_array(kl), 0.0, None))


def standardise(scores: ArrayLike, base: ArrayLike) -> np.ndarray:
    """``(scores - mean(base)) / sd(base)``: in standard deviations of the base policy's answers'
    scores ``base``, from their mean."""
    b = _array(base)
    sd = float(b.std(ddof=1)) if b.size > 1 else math.nan
    if not sd > 0:
        raise ValueError("the base policy's scores need a spread to standardise against")
    return (_array(scores) - float(b.mean())) / sd


def band(per_seed: ArrayLike, answers_se: float = math.nan) -> tuple[float, float, float]:
    """(mean, low, high): the mean over seeds of per-seed means with a 95% t-interval; with one
    seed, ``mean +- 1.96 answers_se`` (the interval over its answers)."""
    x = _array(per_seed)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size == 1:
        half = Z95 * answers_se
    else:
        half = float(sps.t.ppf(0.975, x.size - 1)) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean, mean - half, mean + half


# --------------------------------------------------------------------------- over-optimisation


@dataclass(frozen=True)
class PeakDrop:
    """One variant's over-optimisation test: the peak round of ``judge`` chosen on the
    selection half of the prompts; on the other half, ``drop`` = last minus peak of that judge
    and ``proxy_rise`` = last minus peak of the proxy (paired by seed and prompt)."""

    peak_round: int
    last_round: int
    drop: Comparison
    proxy_rise: Comparison

    @property
    def overoptimised(self) -> bool:
        """The proxy higher at the last checkpoint than at the peak, and the judge significantly
        lower there (the drop's interval below 0)."""
        return self.proxy_rise.diff > 0 and self.drop.ci_high < 0


def halves(prompt_ids: ArrayLike) -> tuple[set[int], set[int]]:
    """The prompts split in two by rank (alternately, in ascending id): (selection, test)."""
    ids = sorted({int(i) for i in _array(prompt_ids)})
    return set(ids[0::2]), set(ids[1::2])


def prompt_units(answers: pd.DataFrame, rounds: int, column: str) -> pd.DataFrame:
    """Per (seed, prompt) of one checkpoint ``rounds``: ``seed, cluster, prompt_id, value``
    (the mean of ``column`` over the prompt's answers)."""
    at = answers[answers["round"] == rounds]
    units = at.groupby(["seed", "cluster", "prompt_id"], as_index=False)[column].mean()
    return units.rename(columns={column: "value"})


def peak_drop(
    answers: pd.DataFrame, judge: str, proxy: str, n_boot: int = 2000, seed: int = 0
) -> PeakDrop:
    """The over-optimisation test of one variant's checkpoint answers (columns ``seed, round,
    cluster, prompt_id`` and the scores ``judge`` and ``proxy``): the round where ``judge``'s
    mean over seeds and the selection half's prompts peaks (``halves``); then on the test half,
    paired by seed and prompt, ``judge`` and ``proxy`` at the last round minus at that peak,
    each with a 95% hierarchical-bootstrap interval. Choosing the peak on other prompts than
    those that measure the drop keeps the maximum's selection bias (a noisy peak is too high)
    out of it."""
    select, test = halves(answers["prompt_id"])
    chosen = answers[answers["prompt_id"].isin(select)]
    means = chosen.groupby("round")[judge].mean()
    peak, last = int(means.idxmax()), int(answers["round"].max())
    held = answers[answers["prompt_id"].isin(test)]

    def diff(column: str) -> Comparison:
        late, early = prompt_units(held, last, column), prompt_units(held, peak, column)
        return paired_difference(late, early, "value", n_boot, seed)

    return PeakDrop(peak, last, diff(judge), diff(proxy))


# --------------------------------------------------------------------------- compute-matched


def best_within(curve: pd.DataFrame, budget: float, select: str) -> pd.DataFrame:
    """Each variant's checkpoint with the highest ``select`` among those whose FLOPs (mean over
    seeds) are within ``budget``: one row per variant, from ``curve`` (columns ``variant, round,
    flops, <select>``, one row per variant and round, means over seeds). A variant with no
    checkpoint within the budget has none."""
    within = curve[curve["flops"] <= budget * (1 + 1e-9)]
    best = within.loc[within.groupby("variant", sort=False)[select].idxmax()]
    return best.reset_index(drop=True)

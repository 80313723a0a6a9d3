"""Hierarchical, paired statistics over the per-prompt table
(``harness.stats.estimates.prompt_table``): one variant's interval, paired differences of variants,
the Holm-adjusted family of all pairs, the leaderboard's letters and rank intervals, and the
gate's three-way decision with its simulated error rates.

Every run (variant x seed) is evaluated on the same prompts, grouped in clusters. A value (win or
reward) of one variant is a seed x prompt table; its uncertainty comes from three levels: the
seed (a new training run redraws everything below it), the cluster (a request template: its
prompts are correlated) and the prompt. Prompts are *crossed* with seeds (every seed sees every
prompt), so one replicate draws clusters and prompts once and applies that draw to every seed and
every variant, and draws seeds independently.

The bootstrap (``_replicates``) is the multilevel bootstrap of Davison & Hinkley (1997, sec. 3.8)
with moment adjustments, because plain resampling with replacement at every level misstates the
uncertainty of a mean: resampling prompts inside resampled clusters counts the within-cluster
variance twice; resampling both seeds and prompts counts the seed x prompt noise two or three times
(McCullagh 2000); and three seeds resampled with replacement have 10 distinct outcomes, so their
percentile intervals undercover and no tail probability below 1/27 exists (Holm needs p-values
down to 0.05 / pairs). Each level contributes its own share, as a deviation from the estimate:

- seeds: a Gaussian-multiplier (wild) bootstrap of the per-seed means, studentised: a replicate's
  seed deviation is ``sum_s g_s (r_s - r_mean) / S * sqrt(S / (S-1)) * sqrt((S-1) / chi2_{S-1})``,
  which is ``s / sqrt(S) * t_{S-1}``: the t interval over seeds when the seeds carry all the
  variance, as the leaderboard's intervals over seeds. The multipliers are shared by variants with
  the same seeds (paired by seed number). A side with one seed cannot measure it: it borrows
  another side's (``Borrowed``: ``sqrt(var) t_df``), or has none (``Comparison.seed_level``);
- clusters: drawn with replacement, each bringing its prompts' seed-averaged values;
- prompts: redrawn within each drawn cluster, weighted ``sqrt(n_c / ((n_c - 1) C))``: just the
  within-cluster variance the cluster level's ``(C-1)/C`` misses (all of it with one cluster);
- the cluster/prompt deviations are shrunk by the seed x prompt noise the seed level already holds
  (``sigma_e^2 / (S P)``, from the two-way residuals).

Intervals are percentiles of the replicates; p-values are studentised (``_p_values``: the levels'
variances on a t distribution), so Holm's decisions do not move with the bootstrap's seed.
Coverage, false-positive rates and the gate's error rates are measured in
``tests/stats/test_stats.py``, and for every route of the gate in ``tests/test_calibration.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import combinations
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats as sps

from harness.core.rules import DEFAULT_TOLERANCE, is_regression
from harness.stats.estimates import (
    ArrayLike,
    Estimate,
    SeedPromptGrid,
    VarianceComponents,
    seed_prompt_grid,
)


@dataclass(frozen=True)
class Comparison:
    """Variant A against variant B on the same prompts (and seeds): ``diff = a - b`` (their means)
    with a 95% hierarchical-bootstrap interval and a two-sided p-value (``_p_values``), over ``n``
    paired (seed, prompt) units. ``seed_level`` says where the between-run variance came from:
    ``"measured"`` (every side with 2+ seeds), ``"borrowed from ..."`` (a side with one seed, see
    ``Borrowed``), or ``"none"``: a side with one seed and nothing to borrow, so the interval
    holds the prompts' variance only and says nothing about another training run."""

    a: float
    b: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    seed_level: str = "measured"


@dataclass(frozen=True)
class Borrowed:
    """The between-run variance lent to a side with one seed, which cannot measure its own: the
    variance ``var`` of one run's mean (``seed + noise / P``: a training run's offset and its
    prompts' noise), the seed x prompt ``noise`` of one prompt's value (taken out of the prompt
    level, which would otherwise count it twice), the degrees of freedom ``df`` of the estimate
    (the lender's seeds - 1) and where it came from. Arrays ``[R]`` or numbers."""

    var: np.ndarray | float
    noise: np.ndarray | float
    df: int
    source: str


def lent_by_components(vc: VarianceComponents, n_prompts: int, source: str) -> Borrowed | None:
    """What stored variance components (``harness.stats.estimates.VarianceComponents``, of a run
    of ``vc.n_seeds`` seeds) lend a one-seed side judged on ``n_prompts`` prompts: one run's
    mean varies by ``seed + noise / P``; None when they were measured on fewer than 2 seeds."""
    if vc.n_seeds < 2:
        return None
    return Borrowed(vc.seed + vc.noise / n_prompts, vc.noise, vc.n_seeds - 1, source)


def lent_by(x: np.ndarray, source: str) -> Borrowed | None:
    """What a side of 2+ seeds ``x [R, S, P]`` (or ``[S, P]``) lends a one-seed side on the same
    prompts: the variance of its per-seed means and its two-way residual noise; None with one
    seed."""
    x = x if x.ndim == 3 else x[None]
    n_seeds, n_prompts = x.shape[-2:]
    if n_seeds < 2:
        return None
    rows, cols = x.mean(-1), x.mean(-2)  # [R, S], [R, P]
    resid = x - rows[..., None] - cols[..., None, :] + rows.mean(-1)[:, None, None]
    noise = (resid**2).sum((-2, -1)) / max((n_seeds - 1) * (n_prompts - 1), 1)
    return Borrowed(rows.var(-1, ddof=1), noise, n_seeds - 1, source)


# --------------------------------------------------------------------------- the bootstrap


@dataclass(frozen=True)
class _Draws:
    prompts: np.ndarray  # [B, P] weights of the prompt columns in each replicate
    seeds: dict[tuple[int, ...], np.ndarray]  # seed set -> [B, S] multipliers (_seed_weights)
    lone: np.ndarray  # [2, B] uniforms: a borrowed seed level's t quantiles, per side


def _counts(index: np.ndarray, n: int) -> np.ndarray:
    """``index [B, K]`` of draws from ``range(n)`` -> ``[B, n]`` times each was drawn."""
    rows = np.arange(index.shape[0])[:, None] * n
    return np.bincount((rows + index).ravel(), minlength=index.shape[0] * n).reshape(-1, n)


def _prompt_weights(rng: np.random.Generator, sizes: np.ndarray, n_boot: int) -> np.ndarray:
    """``[B, P]``: clusters drawn with replacement (each brings its prompts: weight ``K_c``), mixed
    with prompts redrawn within every drawn cluster at ``lam_c`` (see the module docstring)."""
    n_clusters, n_prompts = sizes.size, int(sizes.sum())
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    drawn = rng.integers(0, n_clusters, size=(n_boot, n_clusters))  # [B, C]
    kept = np.repeat(_counts(drawn, n_clusters), sizes, axis=1).astype(np.float64)  # [B, P]
    n = sizes[drawn].ravel()  # [B*C] prompts of each drawn cluster
    rows = np.repeat(np.arange(n_boot), n_clusters).repeat(n)
    cols = offsets[drawn].ravel().repeat(n) + (rng.random(n.sum()) * n.repeat(n)).astype(np.int64)
    redrawn = np.bincount(rows * n_prompts + cols, minlength=n_boot * n_prompts)
    lam = np.where(sizes > 1, np.sqrt(sizes / (np.maximum(sizes - 1, 1) * n_clusters)), 0.0)
    return kept + np.repeat(lam, sizes) * (redrawn.reshape(n_boot, n_prompts) - kept)


def _seed_weights(rng: np.random.Generator, n_seeds: int, n_boot: int) -> np.ndarray:
    """``[B, S]`` studentised Gaussian multipliers: ``(r - r_mean) @ w.T`` is
    ``s / sqrt(S) * t_{S-1}`` in distribution (see the module docstring); zeros for one seed."""
    if n_seeds == 1:
        return np.zeros((n_boot, 1))
    g = rng.standard_normal((n_boot, n_seeds))  # [B, S]
    scale = np.sqrt((n_seeds - 1) / rng.chisquare(n_seeds - 1, size=(n_boot, 1)))  # [B, 1]
    return g * scale * math.sqrt(n_seeds / (n_seeds - 1)) / n_seeds


def _draw(grid: SeedPromptGrid, n_boot: int, seed: int) -> _Draws:
    """One replicate's clusters and prompts are shared by all variants; seeds are drawn once per
    distinct seed set, so variants with the same seeds are paired by seed number."""
    rng = np.random.default_rng(seed)
    prompts = _prompt_weights(rng, grid.sizes, n_boot)
    seeds: dict[tuple[int, ...], np.ndarray] = {}
    for seed_set in dict.fromkeys(grid.seeds.values()):
        seeds[seed_set] = _seed_weights(rng, len(seed_set), n_boot)
    return _Draws(prompts, seeds, rng.random((2, n_boot)))


Side = tuple[np.ndarray, np.ndarray, float]  # values [R, S, P], seed weights [B, S], sign
Lent = tuple[Borrowed, np.ndarray]  # what a one-seed side borrows, uniforms [B] for its t draws


@dataclass(frozen=True)
class _Boot:
    """The replicates of ``R`` estimates and the variance of each level behind them."""

    point: np.ndarray  # [R]
    boot: np.ndarray  # [R, B]
    seed_var: list[tuple[np.ndarray, int]]  # per side with 2+ seeds: s^2 / S [R], its S - 1
    prompt_var: np.ndarray  # [R] the cluster/prompt level's variance, computed (``_prompt_var``)


def _replicates(
    sides: list[Side], prompts: np.ndarray, lent: Sequence[Lent | None] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Point estimate ``[R]`` and bootstrap replicates ``[R, B]`` of ``sum_i sign_i mean(x_i)``,
    for ``R`` tables at once. One side: a variant, or the (seed, prompt) differences of two
    variants paired by seed; two sides: two variants whose seeds are not paired. ``lent[i]``:
    the between-run variance side ``i`` borrows when it has one seed (``Borrowed``)."""
    drawn = _levels(sides, prompts, lent=lent)
    return drawn.point, drawn.boot


def _levels(
    sides: list[Side],
    prompts: np.ndarray,
    sizes: np.ndarray | None = None,
    lent: Sequence[Lent | None] = (),
) -> _Boot:
    """``_replicates``, keeping each level's variance (for ``_p_values``). A side with one seed
    and a ``lent`` variance gets a seed level of its own: ``sqrt(var) * t_df`` per replicate
    (``var`` on ``df`` degrees of freedom), with its ``noise / P`` taken out of the prompt
    level; without one its seed level is absent."""
    n_reps, (n_boot, n_prompts) = sides[0][0].shape[0], prompts.shape
    point, noise = np.zeros(n_reps), np.zeros(n_reps)  # [R], [R]
    seed_dev, columns = np.zeros((n_reps, n_boot)), np.zeros((n_reps, n_prompts))  # seed-averaged
    seed_var: list[tuple[np.ndarray, int]] = []
    for i, (x, weights, sign) in enumerate(sides):
        n_seeds = x.shape[-2]
        rows, cols = x.mean(-1), x.mean(-2)  # [R, S], [R, P]
        mean = rows.mean(-1)  # [R]
        point, columns = point + sign * mean, columns + sign * cols
        if n_seeds == 1:
            borrowed = lent[i] if i < len(lent) else None
            if borrowed is not None:
                lender, uniforms = borrowed
                var = np.broadcast_to(np.asarray(lender.var, dtype=np.float64), (n_reps,))
                seed_var.append((var, lender.df))
                t = sps.t.ppf(uniforms, lender.df)  # [B]
                seed_dev = seed_dev + sign * np.sqrt(var)[:, None] * t[None, :]
                noise = noise + np.asarray(lender.noise, dtype=np.float64) / n_prompts
            continue
        seed_var.append((rows.var(-1, ddof=1) / n_seeds, n_seeds - 1))
        seed_dev = seed_dev + sign * (rows - mean[:, None]) @ weights.T  # [R, B]
        if n_prompts > 1:
            resid = x - rows[..., None] - cols[..., None, :] + mean[:, None, None]
            dof = (n_seeds - 1) * (n_prompts - 1)
            noise = noise + (resid**2).sum((-2, -1)) / dof / (n_seeds * n_prompts)
    prompt_dev = columns @ prompts.T / prompts.sum(1) - columns.mean(-1)[:, None]  # [R, B]
    spread = prompt_dev.var(-1)  # [R]
    shrink = np.sqrt(np.clip(1 - noise / np.where(spread > 0, spread, 1.0), 0.0, 1.0))
    boot = point[:, None] + seed_dev + shrink[:, None] * prompt_dev
    sizes = np.array([n_prompts]) if sizes is None else sizes
    return _Boot(point, boot, seed_var, np.maximum(_prompt_var(columns, sizes) - noise, 0.0))


def _prompt_var(columns: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The variance ``[R]`` of the mean of ``columns [R, P]`` (seed-averaged values of prompts in
    clusters of ``sizes [C]``, in column order) that the bootstrap's cluster and prompt levels
    reproduce, computed rather than drawn: clusters as the sampling units (the cluster-robust
    ``C / (C - 1) sum_c (sum_{i in c} (x_i - mean))^2 / P^2``), or prompts with one cluster."""
    n_prompts = columns.shape[-1]
    resid = columns - columns.mean(-1, keepdims=True)  # [R, P]
    if sizes.size < 2:
        return (resid**2).sum(-1) / max(n_prompts - 1, 1) / n_prompts
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    totals = np.add.reduceat(resid, starts, axis=-1)  # [R, C]
    return sizes.size / (sizes.size - 1) * (totals**2).sum(-1) / n_prompts**2


P_METHOD = "studentised-t"  # how ``Comparison.p_value`` is computed (``_p_values``)


def _p_values(drawn: _Boot) -> np.ndarray:
    """Two-sided p-values ``[R]`` of each estimate against 0, studentised level by level: the
    ``p`` at which the estimate sits exactly on the edge of its ``1 - p`` interval

        |point| = sqrt(sum_sides t_{S-1}(1 - p/2)^2 s^2/S  +  z(1 - p/2)^2 V_prompt),

    each seed level's quantile from t on its ``S - 1`` degrees of freedom (its variance ``s^2/S``
    of the per-seed means; few seeds give heavy tails), the cluster/prompt level's from the normal
    (its variance ``_prompt_var``, less the seed x prompt noise the seed level holds): the
    quantiles the bootstrap's own levels have, and the combination
    ``VarianceComponents.min_detectable`` uses for power. Both variances are computed from the
    data, not from the replicates, so a p-value does not depend on the bootstrap's seed at all. A
    tail fraction of the replicates moved with it wherever only a few of them crossed 0, which is
    exactly where Holm decides (its first step over 28 pairs needs p < 0.0018), and could not go
    below ``1 / (B + 1)``; these exist at every size of family. No spread at all: 1 for no
    difference, else 0. Found by bisection on ``log10 p`` (the edge falls as ``p`` grows)."""
    return studentised_p(drawn.point, drawn.prompt_var, drawn.seed_var)


def half_width(
    prompt_var: np.ndarray,
    seed_var: Sequence[tuple[np.ndarray, int]],
    p: np.ndarray | float = 0.05,
) -> np.ndarray:
    """The half-width ``[R]`` of the ``1 - p`` interval whose levels are ``prompt_var`` (on the
    normal) and the seed levels ``(s^2/S, S - 1)`` of ``seed_var`` (on t; two sides' seed levels
    as one, on Welch-Satterthwaite's degrees of freedom ``(sum v)^2 / sum(v^2 / df)``, since
    each on its own t would count two heavy tails at once): ``_p_values``' edge."""
    half = p / 2
    width = np.asarray(prompt_var, dtype=np.float64) * sps.norm.isf(half) ** 2
    if seed_var:
        total = sum((np.asarray(var, dtype=np.float64) for var, _ in seed_var), np.float64(0))
        spread = sum((np.asarray(var, dtype=np.float64) ** 2 / df for var, df in seed_var),
                     np.float64(0))  # fmt: skip
        df = np.where(spread > 0, total**2 / np.where(spread > 0, spread, 1.0), seed_var[0][1])
        width = width + total * sps.t.isf(half, df) ** 2
    return np.sqrt(width)


def studentised_p(
    point: np.ndarray, prompt_var: np.ndarray, seed_var: Sequence[tuple[np.ndarray, int]]
) -> np.ndarray:
    """``_p_values`` of estimates ``point [R]`` with these levels' variances (``half_width``)."""
    target = np.abs(point)  # [R]
    low, high = np.full(target.shape, -300.0), np.zeros(target.shape)  # log10 p
    with np.errstate(over="ignore", invalid="ignore"):  # quantiles near p = 1e-300 overflow
        for _ in range(60):
            mid = (low + high) / 2
            # the estimate is inside the 1 - p interval: p is smaller
            inside = half_width(prompt_var, seed_var, 10.0**mid) > target
            low, high = np.where(inside, mid, low), np.where(inside, high, mid)
    p = 10.0 ** ((low + high) / 2)
    spread = prompt_var + sum((var for var, _ in seed_var), np.zeros(target.shape))
    return np.where(spread > 0, np.minimum(p, 1.0), np.where(target == 0, 1.0, 0.0))


def seed_means_difference(
    cand: np.ndarray,
    base: np.ndarray,
    prompt_var: np.ndarray | float,
    lend: Borrowed | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """``mean(cand) - mean(base)`` from per-seed values alone (``[R, S_c]``, ``[R, S_b]``: each
    run's mean over the prompts, as a table holds them), with its 95% interval and p-value, when
    the samples behind them are not at hand: (diff, low, high, p, seed_level), arrays ``[R]``.

    The levels are those of the paired bootstrap, combined as ``_p_values`` combines them: each
    side's ``s^2 / S`` of its per-seed values on t with ``S - 1`` degrees of freedom (a side with
    one seed borrows the other side's ``s^2``, else ``lend``'s variance, on the lender's degrees
    of freedom; with neither, its seed level is missing and ``seed_level`` is ``"none"``), and the
    prompt level ``prompt_var`` on the normal: what the per-seed values cannot show, since every
    seed of a variant repeats its clusters' gains (``VarianceComponents.prompt_var``, stored with
    a table). The interval is symmetric: ``diff +- half_width``."""
    cand, base = np.atleast_2d(cand), np.atleast_2d(base)
    diff = cand.mean(-1) - base.mean(-1)  # [R]
    seed_var: list[tuple[np.ndarray, int]] = []
    sources: list[str] = []
    for mine, other, name in ((cand, base, "the baseline"), (base, cand, "the candidate")):
        n_seeds = mine.shape[-1]
        if n_seeds >= 2:
            seed_var.append((mine.var(-1, ddof=1) / n_seeds, n_seeds - 1))
        elif other.shape[-1] >= 2:
            seed_var.append((other.var(-1, ddof=1), other.shape[-1] - 1))
            sources.append(f"{name}'s seeds")
        elif lend is not None:
            seed_var.append((np.broadcast_to(np.asarray(lend.var), diff.shape), lend.df))
            sources.append(lend.source)
        else:
            sources.append("")
    level = "measured" if not sources else f"borrowed from {', '.join(dict.fromkeys(sources))}"
    level = "none" if "" in sources else level
    var = np.broadcast_to(np.asarray(prompt_var, dtype=np.float64), diff.shape)
    half = half_width(var, seed_var)
    return diff, diff - half, diff + half, studentised_p(diff, var, seed_var), level


def _units(units: pd.DataFrame, name: str) -> pd.DataFrame:
    if "variant" in units.columns and units["variant"].nunique() > 1:
        raise ValueError(f"one variant's units expected, got {sorted(units['variant'].unique())}")
    return units.assign(variant=name)


def hierarchical_bootstrap(
    units: pd.DataFrame, value: str, n_boot: int = 1000, seed: int = 0
) -> Estimate:
    """Mean over seeds of the mean over prompts of ``units[value]`` (one variant: columns ``seed,
    cluster, prompt_id, value``) with a 95% multilevel-bootstrap interval (percentiles).

    Order of the levels: the seed is the outermost source of variation, since a new training run
    redraws everything below it; clusters are correlated groups of prompts; prompts are the
    innermost. The prompts are shared by the seeds (crossed, not nested), so one replicate's
    cluster/prompt draw serves every seed, and the seed level is drawn independently of it. With
    one seed the seed level is skipped. ``n`` = prompts x seeds. How each level is drawn, and why
    (three seeds cannot simply be resampled): the module docstring.
    """
    grid = seed_prompt_grid(_units(units, ""), value)
    draws = _draw(grid, n_boot, seed)
    (seeds, x) = grid.seeds[""], grid.values[""]
    point, boot = _replicates([(x[None], draws.seeds[seeds], 1.0)], draws.prompts)
    low, high = np.quantile(boot[0], [0.025, 0.975])
    return Estimate(float(point[0]), float(low), float(high), int(x.size))


def _compare(
    grid: SeedPromptGrid,
    draws: _Draws,
    pairs: list[tuple[str, str]],
    lend: Borrowed | None = None,
) -> list[Comparison]:
    """``a - b`` for each pair: paired by prompt always; by seed number when both have the same
    seeds (all such pairs of one seed set in one vectorised pass), else the seeds of each side
    get their own multipliers (conservative if seed numbers correlate the runs). A side with one
    seed borrows its between-run variance (``Borrowed``) from the other side when that has 2+
    seeds, else from ``lend`` (e.g. a baseline's stored variance components), else has none
    (``Comparison.seed_level`` says which)."""
    boots: dict[tuple[str, str], tuple[float, np.ndarray, float, str]] = {}
    paired: dict[tuple[int, ...], list[tuple[str, str]]] = {}
    for a, b in pairs:
        sa, sb = grid.seeds[a], grid.seeds[b]
        if sa == sb:
            paired.setdefault(sa, []).append((a, b))
            continue
        xa, xb = grid.values[a][None], grid.values[b][None]
        sides = [(xa, draws.seeds[sa], 1.0), (xb, draws.seeds[sb], -1.0)]
        lenders = [lent_by(xb, f"{b}'s seeds") or lend, lent_by(xa, f"{a}'s seeds") or lend]
        lent = [
            _lent(x, lender, u) for x, lender, u in zip((xa, xb), lenders, draws.lone, strict=True)
        ]
        drawn = _levels(sides, draws.prompts, grid.sizes, lent)
        level = _seed_level([xa, xb], lent)
        boots[a, b] = float(drawn.point[0]), drawn.boot[0], float(_p_values(drawn)[0]), level
    for seed_set, group in paired.items():
        x = np.stack([grid.values[a] - grid.values[b] for a, b in group])  # [pairs, S, P]
        both = None if lend is None else _twice(lend)  # two one-seed runs: each its own offset
        lent = [_lent(x, both, draws.lone[0])]
        drawn = _levels([(x, draws.seeds[seed_set], 1.0)], draws.prompts, grid.sizes, lent)
        p, level = _p_values(drawn), _seed_level([x], lent)
        boots.update(
            {
                pair: (float(drawn.point[i]), drawn.boot[i], float(p[i]), level)
                for i, pair in enumerate(group)
            }
        )
    return [_comparison(grid, a, b, *boots[a, b]) for a, b in pairs]


def _twice(lender: Borrowed) -> Borrowed:
    """The between-run variance of the difference of two one-seed runs, each lent ``lender``."""
    return replace(lender, var=2 * np.asarray(lender.var), noise=2 * np.asarray(lender.noise))


def _lent(x: np.ndarray, lender: Borrowed | None, uniforms: np.ndarray) -> Lent | None:
    """What side ``x [R, S, P]`` borrows: ``lender`` when it has one seed, else nothing."""
    return (lender, uniforms) if x.shape[-2] == 1 and lender is not None else None


def _seed_level(xs: list[np.ndarray], lent: list[Lent | None]) -> str:
    """``Comparison.seed_level`` of sides ``xs`` with what they borrowed."""
    alone = [borrowed for x, borrowed in zip(xs, lent, strict=True) if x.shape[-2] == 1]
    if not alone:
        return "measured"
    if any(borrowed is None for borrowed in alone):
        return "none"
    sources = dict.fromkeys(borrowed[0].source for borrowed in alone if borrowed is not None)
    return f"borrowed from {', '.join(sources)}"


def _comparison(
    grid: SeedPromptGrid,
    a: str,
    b: str,
    diff: float,
    boot: np.ndarray,
    p_value: float,
    seed_level: str,
) -> Comparison:
    xa, xb = grid.values[a], grid.values[b]
    low, high = np.quantile(boot, [0.025, 0.975])
    n = xa.shape[1] * min(xa.shape[0], xb.shape[0])
    return Comparison(
        float(xa.mean()), float(xb.mean()), diff, float(low), float(high), p_value, n, seed_level
    )


def paired_difference(
    units_a: pd.DataFrame,
    units_b: pd.DataFrame,
    value: str,
    n_boot: int = 1000,
    seed: int = 0,
    lend: Borrowed | None = None,
    names: tuple[str, str] = ("A", "B"),
) -> Comparison:
    """Mean A - mean B on the same prompts (and seeds), with a 95% hierarchical-bootstrap interval
    of the per-(seed, prompt) difference and a two-sided p-value (``_p_values``). Seeds are paired
    by number when A and B have the same seeds; otherwise only prompts are paired. A side with
    one seed borrows the between-run variance of the other side, else ``lend`` (``_compare``);
    ``names`` name the sides in ``Comparison.seed_level``."""
    tbl = pd.concat([_units(units_a, names[0]), _units(units_b, names[1])], ignore_index=True)
    grid = seed_prompt_grid(tbl, value)
    return _compare(grid, _draw(grid, n_boot, seed), [names], lend)[0]


def compare_all(
    prompt_tbl: pd.DataFrame, value: str, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Every pair of variants (in order of first appearance, ``a`` before ``b``) as
    ``paired_difference``, one bootstrap draw shared by all pairs: columns ``a, b, metric, mean_a,
    mean_b, diff, ci_low, ci_high, p_value, p_holm, separated, n, seed_level``; ``p_holm`` is
    Holm-adjusted over the family of all pairs and ``separated = p_holm < 0.05``. A pair of two
    one-seed variants has no between-run variance (``seed_level`` ``"none"``): it is never
    separated, since its p-value does not say what other training runs would give."""
    grid = seed_prompt_grid(prompt_tbl, value)
    draws = _draw(grid, n_boot, seed)
    pairs = list(combinations(grid.values, 2))
    rows = []
    for (a, b), c in zip(pairs, _compare(grid, draws, pairs), strict=True):
        rows.append({"a": a, "b": b, "metric": value, "mean_a": c.a, "mean_b": c.b,
                     "diff": c.diff, "ci_low": c.ci_low, "ci_high": c.ci_high,
                     "p_value": c.p_value, "n": c.n, "seed_level": c.seed_level})  # fmt: skip
    out = pd.DataFrame(rows, columns=["a", "b", "metric", "mean_a", "mean_b", "diff", "ci_low",
                                      "ci_high", "p_value", "n", "seed_level"])  # fmt: skip
    out.insert(9, "p_holm", holm(out["p_value"].to_numpy()))
    out.insert(10, "separated", (out["p_holm"] < 0.05) & (out["seed_level"] != "none"))
    return out


def rank_intervals(
    prompt_tbl: pd.DataFrame, value: str, n_boot: int = 1000, seed: int = 0
) -> dict[str, tuple[int, int]]:
    """Each variant's 95% interval of its rank (1 = highest value) over hierarchical-bootstrap
    replicates drawn jointly: the same clusters and prompts for every variant, the same seeds for
    variants with the same seed numbers. Ties in a replicate share the better rank."""
    grid = seed_prompt_grid(prompt_tbl, value)
    draws = _draw(grid, n_boot, seed)
    boot = np.stack(
        [
            _replicates([(x[None], draws.seeds[grid.seeds[v]], 1.0)], draws.prompts)[1][0]
            for v, x in grid.values.items()
        ]
    )  # [V, B]
    ranks = sps.rankdata(-boot, axis=0, method="min")  # [V, B]
    best = np.quantile(ranks, 0.025, axis=1, method="lower")
    worst = np.quantile(ranks, 0.975, axis=1, method="higher")
    return {v: (int(lo), int(hi)) for v, lo, hi in zip(grid.values, best, worst, strict=True)}


# --------------------------------------------------------------------------- families, ties, gate


def holm(p_values: ArrayLike) -> np.ndarray:
    """Holm's step-down adjustment of a family's p-values ``[M]`` (the same numbers as
    ``statsmodels.stats.multitest.multipletests(method="holm")``): the i-th smallest becomes
    ``max_{j <= i} min(1, (M - j + 1) p_(j))``. Controls the family-wise error rate."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = (p.size - np.arange(p.size)) * p[order]  # [M]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


def compact_letters(estimates: Mapping[str, float], comparisons: pd.DataFrame) -> dict[str, str]:
    """A compact letter display of the family (Piepho 2004): each variant's letters, such that
    two variants share a letter exactly when ``comparisons`` (rows ``a, b, separated``, as
    ``compare_all``) do not separate them. A variant may carry several letters (``"AB"``: tied
    with the A variants and with the B ones, which are separated from each other).

    Insert and absorb: start with one letter for all; for each separated pair, every letter held
    by both is split in two, one without each of them; a letter whose variants all hold another
    letter too is absorbed. Letters are then named by their best variant (highest estimate), so
    ``A`` is the best variant's. Pairs missing from ``comparisons`` are an error."""
    order = sorted(estimates, key=lambda v: -estimates[v])
    separated = {
        frozenset((a, b))
        for a, b, s in zip(
            comparisons["a"], comparisons["b"], comparisons["separated"], strict=True
        )
        if s
    }
    known = {frozenset((a, b)) for a, b in zip(comparisons["a"], comparisons["b"], strict=True)}
    for a, b in combinations(order, 2):
        if frozenset((a, b)) not in known:
            raise ValueError(f"no comparison of '{a}' with '{b}'")
    columns: list[frozenset[str]] = [frozenset(order)]
    for a, b in combinations(order, 2):  # in ranking order, so the result is deterministic
        if frozenset((a, b)) not in separated:
            continue
        split = [c for both in columns if {a, b} <= both for c in (both - {a}, both - {b})]
        kept = [c for c in columns if not {a, b} <= c]
        columns = _absorb(kept + split)
    rank = {v: i for i, v in enumerate(order)}
    columns.sort(key=lambda c: sorted(rank[v] for v in c))
    return {v: "".join(_letter(k) for k, c in enumerate(columns) if v in c) for v in order}


def _absorb(columns: list[frozenset[str]]) -> list[frozenset[str]]:
    """The columns that are no other column's subset (duplicates kept once)."""
    unique = list(dict.fromkeys(columns))
    return [c for c in unique if not any(c < other for other in unique)]


def _letter(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else _letter(i // 26 - 1) + _letter(i % 26)


GateDecision = Literal["pass", "regression", "inconclusive"]


def gate_decision(diff: float, ci_low: float, ci_high: float, tolerance: float) -> GateDecision:
    """The gate's three-way decision on ``diff`` = candidate - baseline with its 95% interval
    (both sides' uncertainty, e.g. ``paired_difference``):

    - ``regression``: a drop is established (``ci_high < 0``) and its estimate exceeds the
      tolerance (``-diff > tolerance``): ``harness.core.rules.is_regression``, the leaderboard's
      rule;
    - ``pass``: a drop larger than the tolerance is ruled out (``ci_low >= -tolerance``);
    - ``inconclusive``: neither; the data cannot tell (see ``precision_needed``).

    The two decisions exclude each other (``ci_low <= diff``). False alarm: a regression needs the
    interval to exclude 0, so with no true drop it happens at most 2.5% of the time (one side of a
    95% interval that covers); a pass at a true drop of the tolerance, likewise. Measured rates
    against the true drop: ``simulate_gate``. A NaN interval can regress on the drop alone (as
    ``is_regression``), never pass.
    """
    if is_regression(0.0, diff, ci_high, tolerance):
        return "regression"
    if ci_low >= -tolerance - 1e-9:  # the same float slack as is_regression
        return "pass"
    return "inconclusive"


def precision_needed(diff: float, tolerance: float) -> float:
    """The half-width of a symmetric 95% interval ``diff +- h`` below which ``gate_decision``
    decides for this estimate: ``diff + tolerance`` (pass) when the drop is within the tolerance,
    ``-diff`` (regression) when it exceeds it; 0.0 at the boundary, where no precision decides."""
    if -diff > tolerance + 1e-9:
        return -diff
    return max(diff + tolerance, 0.0)


def simulate_gate(
    true_drops: Sequence[float] = (0.0, 0.025, 0.05, 0.1, 0.15),
    tolerance: float = DEFAULT_TOLERANCE,
    n_seeds: int = 3,
    n_prompts: int = 128,
    n_clusters: int = 18,
    samples_per_prompt: int = 4,
    seed_sd: float = 0.035,  # per-seed win-rates 0.04 apart, 0.02 of it the noise of 128 prompts
    outcome_sd: float = 0.45,
    cluster_sd: float = 0.0,
    reps: int = 400,
    n_boot: int = 500,
    seed: int = 0,
) -> pd.DataFrame:
    """How often ``gate_decision`` on the paired bootstrap interval of candidate - baseline says
    regression / inconclusive / pass, against the candidate's true drop in win-rate: one row per
    drop, columns ``true_drop, p_regression, p_inconclusive, p_pass, half_width`` (the mean
    interval half-width), each rate over ``reps`` simulated pairs of suites.

    Model of one side (a suite of ``n_seeds`` runs on the same ``n_prompts`` prompts in
    ``n_clusters`` clusters), on the win-rate scale, normal and unclipped::

        x[s, p] = 0.5 + b_p + c_{c(p)} + a_s + e_{s,p}  (- drop, for the candidate)

    ``a ~ N(0, seed_sd)`` is a training run's own offset; ``e ~ N(0, outcome_sd / sqrt(k))`` is
    the mean of ``k = samples_per_prompt`` sampled outcomes of a prompt; ``c ~ N(0, cluster_sd)``
    is the side's own gain on a cluster of prompts (the variant x cluster interaction), the same
    for every seed; the prompt's difficulty ``b`` is shared by both sides (the same prompts and
    reference samples), so it cancels in the difference and is not drawn (nor is a variant x
    prompt interaction). Seeds are paired by number, as ``paired_difference`` does. One
    bootstrap draw serves every repetition; a rate's Monte-Carlo error is about
    ``sqrt(p (1 - p) / reps)``.
    """
    rng = np.random.default_rng(seed)
    sizes: np.ndarray = np.diff(np.linspace(0, n_prompts, n_clusters + 1).round().astype(np.int64))
    prompts = _prompt_weights(rng, sizes, n_boot)
    seeds = _seed_weights(rng, n_seeds, n_boot)
    noise_sd = outcome_sd / math.sqrt(samples_per_prompt)
    rows = []
    shape = (reps, n_seeds, n_prompts)
    for drop in true_drops:
        runs = rng.normal(0, seed_sd, (2, reps, n_seeds, 1))  # [2, R, S, 1] candidate, baseline
        noise = rng.normal(0, noise_sd, (2, *shape))  # [2, R, S, P]
        clusters = np.repeat(rng.normal(0, cluster_sd, (2, reps, 1, len(sizes))), sizes, -1)
        sides = runs + clusters + noise  # [2, R, S, P]
        diff = (sides[0] - drop) - sides[1]  # [R, S, P]
        point, boot = _replicates([(diff, seeds, 1.0)], prompts)  # [R], [R, B]
        low, high = np.quantile(boot, [0.025, 0.975], axis=1)  # [R], [R]
        decisions = pd.Series(
            [
                gate_decision(d, lo, hi, tolerance)
                for d, lo, hi in zip(point, low, high, strict=True)
            ]
        )
        rate = decisions.value_counts(normalize=True)
        rows.append(
            {
                "true_drop": drop,
                "p_regression": float(rate.get("regression", 0.0)),
                "p_inconclusive": float(rate.get("inconclusive", 0.0)),
                "p_pass": float(rate.get("pass", 0.0)),
                "half_width": float(np.mean(high - low) / 2),
            }
        )
    return pd.DataFrame(rows)

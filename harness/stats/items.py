"""Capability deltas paired per item: the policy and the base model answer the same probe items, so
their difference is estimated item by item, never as two independent accuracies.

- Binary items (an accuracy probe): Newcombe's hybrid score interval for a difference of paired
  proportions (Newcombe 1998, method 10). With ``b`` items right only for the policy, ``c`` right
  only for the base, ``n`` items: ``Δ = (b - c) / n``; the interval combines the Wilson intervals
  ``[l1, u1]``, ``[l2, u2]`` of the two accuracies ``p1``, ``p2`` with their correlation ``φ``::

      low  = Δ - sqrt((p1 - l1)² - 2φ (p1 - l1)(u2 - p2) + (u2 - p2)²)
      high = Δ + sqrt((u1 - p1)² - 2φ (u1 - p1)(p2 - l2) + (p2 - l2)²)

  It is never of zero width while ``n`` is finite: with no changed answer it is about
  ``± z² / (n + z²)``.
- Continuous items (bits per byte): the stratified mean of the paired differences with a normal
  interval, ``Σ_s w_s d̄_s ± z sqrt(Σ_s w_s² var_s / n_s)`` (``w_s = n_s / n``).
- Over several seeds of one variant (or two variants compared item by item): a hierarchical
  bootstrap that draws seeds, then items within each stratum (the strata are fixed by design).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from harness.stats.estimates import Z95, Estimate


class ItemPairingError(ValueError):
    """Two sets of item results that cannot be paired by item id."""


def pair(
    base_ids: Sequence[str],
    base_values: Sequence[float],
    ids: Sequence[str],
    values: Sequence[float],
) -> tuple[np.ndarray, np.ndarray]:
    """``(base [n], policy [n])`` aligned by item id, in the order of ``ids``. Every id must be
    unique and the two sides must hold the same items (``ItemPairingError`` otherwise)."""
    if len(set(base_ids)) != len(base_ids) or len(set(ids)) != len(ids):
        raise ItemPairingError("item ids repeat: each item must have one id")
    if len(base_ids) != len(base_values) or len(ids) != len(values):
        raise ItemPairingError("each item needs one id and one value")
    index = {item: i for i, item in enumerate(base_ids)}
    missing = [item for item in ids if item not in index]
    if missing or len(ids) != len(base_ids):
        shown = ", ".join(missing[:3]) or "(the base has more items)"
        raise ItemPairingError(f"the items differ from the base's: {shown}")
    base = np.asarray(base_values, dtype=np.float64)[[index[item] for item in ids]]
    return base, np.asarray(values, dtype=np.float64)


def _wilson(successes: float, n: int, z: float) -> tuple[float, float]:
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def newcombe_paired(base: np.ndarray, policy: np.ndarray, z: float = Z95) -> Estimate:
    """``policy - base`` accuracy over paired binary items ``[n]`` (0 or 1 each), with Newcombe's
    hybrid score interval (method 10, see the module)."""
    base, policy = np.asarray(base) > 0.5, np.asarray(policy) > 0.5
    n = int(base.size)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    both = int((policy & base).sum())
    only_policy = int((policy & ~base).sum())
    only_base = int((~policy & base).sum())
    neither = n - both - only_policy - only_base
    p1, p2 = (both + only_policy) / n, (both + only_base) / n
    l1, u1 = _wilson(both + only_policy, n, z)
    l2, u2 = _wilson(both + only_base, n, z)
    margins = (
        (both + only_policy) * (neither + only_base) * (both + only_base) * (neither + only_policy)
    )
    phi = (both * neither - only_policy * only_base) / math.sqrt(margins) if margins else 0.0
    delta = p1 - p2
    down = (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2
    up = (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2
    return Estimate(delta, delta - math.sqrt(max(down, 0.0)), delta + math.sqrt(max(up, 0.0)), n)


def stratified_mean(diff: np.ndarray, strata: Sequence[str], z: float = Z95) -> Estimate:
    """The mean of ``diff [n]`` with a stratified normal interval (see the module); a stratum of
    one item adds no variance term it cannot estimate."""
    diff = np.asarray(diff, dtype=np.float64)
    labels = np.asarray(strata)
    n = int(diff.size)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    var = 0.0
    for stratum in np.unique(labels):
        d = diff[labels == stratum]
        if d.size > 1:
            var += (d.size / n) ** 2 * float(d.var(ddof=1)) / d.size
    mean = float(diff.mean())
    half = z * math.sqrt(var)
    return Estimate(mean, mean - half, mean + half, n)


def paired_delta(
    base: np.ndarray, policy: np.ndarray, strata: Sequence[str], binary: bool
) -> Estimate:
    """``policy - base`` over paired items of one run: Newcombe's interval for binary items, the
    stratified normal interval otherwise."""
    if binary:
        return newcombe_paired(base, policy)
    return stratified_mean(np.asarray(policy) - np.asarray(base), strata)


def hierarchical_bootstrap(
    diffs: Sequence[np.ndarray],
    strata: Sequence[str],
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate:
    """The mean paired difference over seeds and items: ``diffs`` holds one ``[n]`` array per seed
    (the same items, in the order of ``strata``). Each resample draws seeds with replacement, then
    within each stratum items with replacement (one draw of items shared by the drawn seeds'
    arrays, so a seed's and an item's effects both vary); percentile interval."""
    table = np.stack([np.asarray(d, dtype=np.float64) for d in diffs])  # [S, n]
    labels = np.asarray(strata)
    seeds, n = table.shape
    if n == 0 or labels.size != n:
        raise ValueError("each item needs its stratum, and there must be items")
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == s) for s in np.unique(labels)]
    means = np.empty(resamples)
    for r in range(resamples):
        rows = rng.integers(0, seeds, seeds)  # [S]
        cols = np.concatenate([g[rng.integers(0, g.size, g.size)] for g in groups])  # [n]
        means[r] = table[np.ix_(rows, cols)].mean()
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Estimate(float(table.mean()), float(low), float(high), n)

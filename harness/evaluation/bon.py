"""Best-of-n as a curve: from one pool of K samples per prompt, the expected score of best-of-n
for every n <= K, under any judge, without drawing again.

**The estimator.** A prompt's pool holds K samples; best-of-n draws n of them (without
replacement, each n-subset equally likely) and answers with the one the proxy reward ranks
highest. Rank the pool by proxy, ascending: sample ``(i)`` (i = 1..K) is the best of a subset
exactly when it is in the subset and the other n - 1 come from the i - 1 ranked below it, which
``C(i-1, n-1)`` of the ``C(K, n)`` subsets do. So

    E[score of best-of-n] = sum_i C(i-1, n-1) / C(K, n) * score_(i)

exactly, for any score (a judge's reward, a win-rate against the reference's answers): the
unbiased estimator of the best-of-n score from the K drawn samples (it is the average over all
n-subsets of the pool; n = K gives the best of the pool, n = 1 its mean).

**Ties in proxy** are broken as ``methods.best_of_n`` breaks them, by position: among samples of
equal proxy reward the one drawn first wins (``argmax`` keeps the first). So the ranking sorts by
proxy ascending and, among equals, by position descending; with this total order the formula
is the exact average over subsets for pools with ties too.

**KL.** ``log n - (n - 1) / n`` (``methods.best_of_n.best_of_n_kl``) is an upper bound of
KL(best-of-n || base) (Beirami et al. 2024), exact only when no two samples tie; the curve
labels it ``kl_bound``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.stats.estimates import mean_with_ci, outcomes
from methods.best_of_n import best_of_n_kl


def curve_ns(n_max: int) -> list[int]:
    """``1, 2, 4, ...`` up to ``n_max``, and ``n_max`` itself."""
    ns = [1 << e for e in range(n_max.bit_length()) if 1 << e <= n_max]
    return ns if ns[-1] == n_max else [*ns, n_max]


def weights(k: int, n: int) -> np.ndarray:
    """``[K]``: ``C(i-1, n-1) / C(K, n)`` for the sample ranked i-th by proxy (i = 1..K,
    ascending); they sum to 1. Exact integers, divided once (Python's int division rounds
    correctly however large they grow)."""
    if not 1 <= n <= k:
        raise ValueError(f"best-of-{n} needs 1 <= n <= K, the pool's size ({k})")
    total = math.comb(k, n)
    return np.array([math.comb(i - 1, n - 1) / total for i in range(1, k + 1)])


def proxy_ranking(proxy: np.ndarray) -> np.ndarray:
    """``[G, K]`` column order ranking each row of ``proxy [G, K]`` ascending, equal values
    by position descending (the first drawn ranks highest, as ``argmax`` picks it)."""
    positions = np.broadcast_to(np.arange(proxy.shape[1]), proxy.shape)
    return np.lexsort((-positions, proxy), axis=-1)


def expected_best_of_n(proxy: np.ndarray, score: np.ndarray, n: int) -> np.ndarray:
    """``[G]``: per pool (row of ``proxy, score [G, K]``) the expected ``score`` of the sample
    best-of-n picks by ``proxy`` from n of the row's K, drawn without replacement."""
    proxy, score = np.asarray(proxy, dtype=np.float64), np.asarray(score, dtype=np.float64)
    if proxy.shape != score.shape or proxy.ndim != 2:
        raise ValueError(f"proxy and score are [G, K] alike, not {proxy.shape} and {score.shape}")
    ranked = np.take_along_axis(score, proxy_ranking(proxy), axis=1)  # [G, K] ascending by proxy
    return ranked @ weights(proxy.shape[1], n)  # [G]


def curve(
    proxy: np.ndarray,
    scores: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    n_max: int,
    bootstrap: int,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The best-of-n curve of a run, one row per (n, metric): ``reward.<judge>`` and
    ``winrate.<judge>`` (against the reference's answers to the same prompt, as the evaluation
    scores them) for ``n`` in ``curve_ns(n_max)``, each the mean over prompts of the per-prompt
    estimate with a bootstrap 95% interval over prompts, and ``kl_bound``.

    ``proxy [P, a, K]``: the proxy reward of the K pool samples of each of a prompt's ``a``
    answers; ``scores``: judge -> ``[P, a, K]`` those samples' scores; ``reference``: judge ->
    ``[P, k]`` the reference's answers' scores."""
    P, a, K = proxy.shape
    rows = []
    for judge, score in scores.items():
        ref = np.asarray(reference[judge], dtype=np.float64)  # [P, k]
        wins = _win_rates(np.asarray(score, dtype=np.float64), ref)  # [P, a, K]
        for metric, values in ((f"reward.{judge}", score), (f"winrate.{judge}", wins)):
            flat = np.asarray(values, dtype=np.float64).reshape(P * a, K)
            for n in curve_ns(n_max):
                per_prompt = expected_best_of_n(proxy.reshape(P * a, K), flat, n).reshape(P, a)
                est = mean_with_ci(per_prompt.mean(axis=1), bootstrap, seed)
                rows.append(
                    {"n": n, "kl_bound": best_of_n_kl(n), "metric": metric, "value": est.value}
                    | {"ci_low": est.ci_low, "ci_high": est.ci_high, "prompts": P}
                )
    return rows


def _win_rates(score: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``[P, a, K]``: each pool sample's win-rate over its prompt's k reference answers
    (``outcomes``: wins + ties / 2), from ``score [P, a, K]`` and ``reference [P, k]``."""
    P, a, K = score.shape
    k = reference.shape[1]
    ours = np.repeat(score.reshape(P, a * K), k, axis=1)  # [P, a * K * k]
    theirs = np.tile(reference, (1, a * K))  # [P, a * K * k]
    return outcomes(ours.ravel(), theirs.ravel()).reshape(P, a, K, k).mean(axis=-1)

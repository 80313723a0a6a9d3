"""Best-of-n as a curve (``harness.evaluation.bon``): the estimator's weights by hand, the
estimator against every subset of a pool and against brute-force simulation, ties broken as
best-of-n breaks them, the curve's rows and its table."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from harness.evaluation import bon
from harness.report.tables import BON_COLUMNS, bon_table
from harness.suite.runs import RunResult


def best_of_subset(proxy: np.ndarray, subset: tuple[int, ...]) -> int:
    """What ``methods.best_of_n.respond`` answers from the samples ``subset`` (in drawn order):
    the highest proxy, the first drawn on ties."""
    ordered = sorted(subset)
    return ordered[int(np.argmax(proxy[ordered]))]


def test_weights_by_hand() -> None:
    # K = 4, n = 2: C(i-1, 1) / C(4, 2) = 0, 1, 2, 3 over 6
    assert bon.weights(4, 2) == pytest.approx([0, 1 / 6, 2 / 6, 3 / 6])
    assert bon.weights(5, 1) == pytest.approx([0.2] * 5)  # best of 1: the mean
    assert bon.weights(5, 5) == pytest.approx([0, 0, 0, 0, 1])  # best of all: the top
    assert bon.weights(200, 37).sum() == pytest.approx(1.0)  # large binomials stay exact
    with pytest.raises(ValueError, match="1 <= n <= K"):
        bon.weights(4, 5)


def test_curve_ns() -> None:
    assert bon.curve_ns(8) == [1, 2, 4, 8]
    assert bon.curve_ns(6) == [1, 2, 4, 6]
    assert bon.curve_ns(1) == [1]


def test_estimator_is_the_average_over_every_subset_ties_included() -> None:
    """Exact: enumerate every n-subset of pools with tied proxy rewards."""
    rng = np.random.default_rng(0)
    K = 7
    proxy = rng.integers(0, 3, size=(5, K)).astype(float)  # few values: many ties
    score = rng.normal(size=(5, K))
    for n in range(1, K + 1):
        got = bon.expected_best_of_n(proxy, score, n)
        for g in range(len(proxy)):
            subsets = list(itertools.combinations(range(K), n))
            picked = [score[g, best_of_subset(proxy[g], s)] for s in subsets]
            assert got[g] == pytest.approx(np.mean(picked), abs=1e-12), (g, n)


def test_estimator_matches_brute_force_simulation() -> None:
    """100,000 random n-subsets per pool (seed 0), each answered as best-of-n answers. Scores are
    in [0, 1], so the simulated mean's standard error is at most 0.5 / sqrt(100,000) = 0.0016;
    the tolerance 0.0075 is 4.7 of them: a correct estimator fails it with probability below
    3e-6 per comparison, 4e-5 over the test's 12 (the seed is fixed: the test is deterministic)."""
    rng = np.random.default_rng(0)
    G, K, draws = 3, 16, 100_000
    proxy = np.round(rng.normal(size=(G, K)), 1)  # rounded: some ties
    score = rng.random(size=(G, K))
    for n in (1, 2, 5, 16):
        estimate = bon.expected_best_of_n(proxy, score, n)
        for g in range(G):
            subsets = np.sort(rng.random((draws, K)).argsort(axis=1)[:, :n], axis=1)  # [M, n]
            first_best = proxy[g][subsets].argmax(axis=1)  # [M] the first maximal, drawn order
            picked = subsets[np.arange(draws), first_best]
            assert abs(score[g][picked].mean() - estimate[g]) < 0.0075, (n, g)


def test_ties_go_to_the_first_drawn() -> None:
    proxy = np.array([[1.0, 2.0, 2.0]])
    score = np.array([[0.0, 10.0, 20.0]])
    # best of 3: the first of the two tied 2.0s
    assert bon.expected_best_of_n(proxy, score, 3)[0] == 10.0
    # best of 2: {0,1} -> 10, {0,2} -> 20, {1,2} -> 10
    assert bon.expected_best_of_n(proxy, score, 2)[0] == pytest.approx(40 / 3)


def test_curve_rows() -> None:
    """Two prompts, two answers each, pools of 4; the reference answered each prompt twice."""
    rng = np.random.default_rng(1)
    proxy = rng.normal(size=(2, 2, 4))
    gold = proxy + rng.normal(size=(2, 2, 4))
    reference = {"gold": np.array([[0.0, 0.5], [-1.0, 2.0]])}
    rows = bon.curve(proxy, {"gold": gold}, reference, n_max=4, bootstrap=200)
    by = {(r["metric"], r["n"]): r for r in rows}
    assert sorted(by) == [(m, n) for m in ("reward.gold", "winrate.gold") for n in (1, 2, 4)]
    for (_, n), row in by.items():
        assert row["kl_bound"] == pytest.approx(math.log(n) - (n - 1) / n)
        assert row["prompts"] == 2 and row["ci_low"] <= row["value"] <= row["ci_high"]
    # n = 1: the mean of every pool sample; n = K: the proxy's pick of each pool
    assert by[("reward.gold", 1)]["value"] == pytest.approx(gold.mean())
    picks = np.take_along_axis(gold, proxy.argmax(axis=-1)[..., None], axis=-1)[..., 0]  # [2, 2]
    assert by[("reward.gold", 4)]["value"] == pytest.approx(picks.mean())
    ref = reference["gold"]
    wins = [[np.mean([s > r for r in ref[p]]) for s in picks[p]] for p in range(2)]  # no ties
    assert by[("winrate.gold", 4)]["value"] == pytest.approx(np.mean(wins))


def test_bon_table_has_a_row_per_run_n_and_metric() -> None:
    point = {"n": 1, "kl_bound": 0.0, "metric": "reward.gold", "value": 0.5}
    point |= {"ci_low": 0.4, "ci_high": 0.6, "prompts": 64}
    curve = [point, {**point, "n": 2, "kl_bound": math.log(2) - 0.5}]
    runs = [
        RunResult("a" * 16, "s", "best_of_n", "best_of_n", 0, "done", bon_curve=curve),
        RunResult("b" * 16, "s", "dpo", "dpo", 0, "done"),
    ]
    table = bon_table(runs)
    assert list(table.columns) == BON_COLUMNS
    assert list(table["n"]) == [1, 2] and set(table["variant"]) == {"best_of_n"}
    assert str(table["n"].dtype) == "int64" and str(table["value"].dtype) == "float64"
    assert bon_table([]).empty

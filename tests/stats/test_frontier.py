"""The statistics of reward against KL and compute (``harness.stats.frontier``), on synthetic data
whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.stats.frontier import (
    band,
    best_within,
    gao_fit,
    halves,
    peak_drop,
    sqrt_kl,
    standardise,
)


@pytest.mark.parametrize(
    ("form", "alpha", "beta"), [("bon", 1.3, 0.4), ("rl", 0.9, 0.35), ("rl", 0.5, -0.1)]
)
def test_gao_fit_recovers_known_parameters(form: str, alpha: float, beta: float) -> None:
    """Points on R(d) = d(alpha - beta d) or d(alpha - beta log d) plus noise: the fit finds
    alpha and beta within a few noise-widths, and R^2 near 1 - noise variance / total."""
    rng = np.random.default_rng(0)
    d = rng.uniform(0.05, 3.0, size=400)
    second = d**2 if form == "bon" else d * np.log(d)
    clean = alpha * d - beta * second
    noisy = clean + rng.normal(0, 0.05, size=d.size)
    fit = gao_fit(d, noisy, form)  # type: ignore[arg-type]
    assert fit.alpha == pytest.approx(alpha, abs=0.02)
    assert fit.beta == pytest.approx(beta, abs=0.02)
    expected_r2 = 1 - 0.05**2 / clean.var()
    assert fit.r2 == pytest.approx(expected_r2, abs=0.01)
    assert fit.n == 400
    np.testing.assert_allclose(fit.predict(d), clean, atol=0.05)
    exact = gao_fit(d, clean, form)  # type: ignore[arg-type]
    assert (exact.alpha, exact.beta, exact.r2) == pytest.approx((alpha, beta, 1.0))


def test_gao_fit_rl_form_is_zero_at_zero_and_skips_nan() -> None:
    d = np.array([0.0, 0.5, 1.0, 2.0, np.nan])
    r = 0.8 * d - 0.3 * np.where(d > 0, d * np.log(np.where(d > 0, d, 1)), 0)
    fit = gao_fit(d, r, "rl")
    assert fit.n == 4 and fit.predict([0.0])[0] == 0.0
    assert (fit.alpha, fit.beta) == pytest.approx((0.8, 0.3))


def test_gao_fit_needs_three_points_with_spread() -> None:
    assert math.isnan(gao_fit([1.0, 2.0], [1.0, 2.0], "bon").alpha)
    assert math.isnan(gao_fit([1.0, 1.0, 1.0], [1.0, 2.0, 3.0], "rl").r2)  # rank 1
    with pytest.raises(ValueError, match="never negative"):
        gao_fit([-1.0, 1.0, 2.0], [0.0, 1.0, 2.0], "bon")


def test_a_wrong_form_fits_worse() -> None:
    """Best-of-n shaped data: its own form fits exactly, the RL form does not."""
    d = np.linspace(0.1, 3, 30)
    r = d * (1.0 - 0.5 * d)
    assert gao_fit(d, r, "bon").r2 == pytest.approx(1.0)
    assert gao_fit(d, r, "rl").r2 < 0.99


def test_sqrt_kl_and_standardise() -> None:
    np.testing.assert_allclose(sqrt_kl([-0.01, 0.0, 4.0]), [0.0, 0.0, 2.0])
    base = np.array([1.0, 2.0, 3.0])  # mean 2, sd 1
    np.testing.assert_allclose(standardise([2.0, 4.0], base), [0.0, 2.0])
    with pytest.raises(ValueError, match="spread"):
        standardise([1.0], [1.0, 1.0])


def test_band_is_a_t_interval_over_seeds_or_a_normal_one_over_answers() -> None:
    mean, _, high = band([1.0, 2.0, 3.0])
    assert mean == 2.0 and high - mean == pytest.approx(4.303 * 1.0 / math.sqrt(3), rel=1e-3)
    assert band([0.5], answers_se=0.1) == pytest.approx((0.5, 0.5 - 0.196, 0.5 + 0.196))
    assert all(math.isnan(x) for x in band([np.nan]))


def _answers(drop: float, rise: float, seeds: int = 3, prompts: int = 60) -> pd.DataFrame:
    """Checkpoint answers of one variant over rounds 0..4: gold rises to a peak at round 2 and
    falls by ``drop`` at round 4; the proxy rises by ``rise`` per round; noise per answer."""
    rng = np.random.default_rng(1)
    gold_at = {0: 0.0, 1: 0.5, 2: 1.0, 3: 1.0 - drop / 2, 4: 1.0 - drop}
    rows = []
    for s in range(seeds):
        for r, g in gold_at.items():
            for p in range(prompts):
                gold, proxy = g + rng.normal(0, 0.5), rise * r + rng.normal(0, 0.5)
                rows.append({"seed": s, "round": r, "cluster": f"c{p % 6}", "prompt_id": p,
                             "gold": gold, "proxy": proxy})  # fmt: skip
    return pd.DataFrame(rows)


def test_peak_drop_finds_over_optimisation() -> None:
    test = peak_drop(_answers(drop=0.8, rise=0.3), "gold", "proxy", n_boot=500)
    assert (test.peak_round, test.last_round) == (2, 4)
    assert test.drop.diff == pytest.approx(-0.8, abs=0.2) and test.drop.ci_high < 0
    assert test.proxy_rise.diff == pytest.approx(0.6, abs=0.2)
    assert test.overoptimised


def test_peak_drop_is_not_fooled_by_a_plateau() -> None:
    """Gold flat after its rise (no drop): picking the noisy maximum must not make a plateau look
    like a significant fall, since the drop is measured on prompts the peak was not chosen on."""
    false_alarms = 0
    for rep in range(20):
        rng = np.random.default_rng(rep)
        answers = _answers(drop=0.0, rise=0.3, seeds=2, prompts=40)
        answers["gold"] = np.where(answers["round"] >= 2, 1.0, 0.5 * answers["round"])
        answers["gold"] += rng.normal(0, 0.5, len(answers))
        false_alarms += peak_drop(answers, "gold", "proxy", n_boot=300, seed=rep).overoptimised
    assert false_alarms <= 3  # 5% expected at most (one-sided 2.5%), 20 tries


def test_halves_alternate_ids() -> None:
    assert halves([5, 1, 3, 3, 9]) == ({1, 5}, {3, 9})


def test_best_within_picks_by_the_selection_judge_within_budget() -> None:
    curve = pd.DataFrame(
        {
            "variant": ["a", "a", "a", "b", "b"],
            "round": [0, 1, 2, 0, 1],
            "flops": [0.0, 10.0, 20.0, 0.0, 15.0],
            "z.heldout": [0.0, 0.4, 0.9, 0.0, 0.2],
        }
    )
    best = best_within(curve, 15.0, "z.heldout")
    assert list(zip(best["variant"], best["round"], strict=True)) == [("a", 1), ("b", 1)]

"""Calibration of the per-item paired capability delta (``harness.stats.items``) at a true Δ of 0.

Each check simulates 2,000 probes with fixed seeds. The coverage of a calibrated 95% interval over
2,000 draws has a standard deviation of 0.0049, so the band [0.93, 0.97] is about four of them
either side: a calibrated interval fails it with probability under 1e-4 (the seeds are fixed, so
the outcome is the same on every run).
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.stats.items import (
    hierarchical_bootstrap,
    newcombe_paired,
    pair,
    paired_delta,
    stratified_mean,
)

DRAWS = 2000
STRATA = np.repeat([f"seen-{r}" for r in (1, 2, 4, 8, 16, 32)], 70)  # [420], as tiny_facts
ACCURACY = np.repeat([0.3, 0.4, 0.55, 0.75, 0.9, 0.97], 70)  # [420] each item's stratum's


def _binary_probe(rng: np.random.Generator, change: float) -> tuple[np.ndarray, np.ndarray]:
    """Base and policy answers of one probe with equal accuracies: a share ``change`` of the
    policy's answers is drawn afresh, the rest kept."""
    base = rng.random(ACCURACY.size) < ACCURACY
    fresh = rng.random(ACCURACY.size) < ACCURACY
    redrawn = rng.random(ACCURACY.size) < change
    return base.astype(float), np.where(redrawn, fresh, base).astype(float)


@pytest.mark.parametrize("change", [0.05, 0.2])
def test_newcombe_coverage_at_zero(change: float) -> None:
    rng = np.random.default_rng(2601)
    covered = 0
    for _ in range(DRAWS):
        base, policy = _binary_probe(rng, change)
        est = newcombe_paired(base, policy)
        covered += est.ci_low <= 0.0 <= est.ci_high
    assert 0.93 <= covered / DRAWS <= 0.97


def test_stratified_mean_coverage_at_zero() -> None:
    # bits per byte: each document's own level, a small symmetric drift per document
    rng = np.random.default_rng(2602)
    levels = rng.gamma(4.0, 0.25, STRATA.size)  # [420]
    covered = 0
    for _ in range(DRAWS):
        drift = rng.normal(0.0, 0.05, STRATA.size) * levels
        est = stratified_mean(drift, STRATA)
        covered += est.ci_low <= 0.0 <= est.ci_high
    assert 0.93 <= covered / DRAWS <= 0.97


def test_no_changed_answer_is_not_zero_width() -> None:
    answers = (np.arange(420) % 3 > 0).astype(float)
    est = newcombe_paired(answers, answers)
    assert est.value == 0.0 and est.ci_low < 0.0 < est.ci_high
    assert est.ci_high - est.ci_low < 0.03  # about 2 z^2 / (n + z^2) = 0.018 at n = 420
    perfect = newcombe_paired(np.ones(420), np.ones(420))
    assert perfect.ci_low < 0.0 < perfect.ci_high


def test_a_real_drop_is_seen() -> None:
    rng = np.random.default_rng(2603)
    base = (rng.random(420) < ACCURACY).astype(float)
    policy = base.copy()
    policy[rng.choice(np.flatnonzero(base), 60, replace=False)] = 0.0  # 60 answers forgotten
    est = paired_delta(base, policy, STRATA, binary=True)
    assert est.value == pytest.approx(-60 / 420)
    assert est.ci_high < 0.0


def test_pairing_is_by_item_id() -> None:
    base, policy = pair(["a", "b", "c"], [1.0, 0.0, 1.0], ["c", "a", "b"], [0.0, 1.0, 1.0])
    assert base.tolist() == [1.0, 1.0, 0.0] and policy.tolist() == [0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="differ"):
        pair(["a", "b"], [1.0, 0.0], ["a", "z"], [1.0, 0.0])
    with pytest.raises(ValueError, match="repeat"):
        pair(["a", "a"], [1.0, 0.0], ["a", "b"], [1.0, 0.0])


def test_hierarchical_bootstrap_covers_zero_and_sees_a_drop() -> None:
    rng = np.random.default_rng(2604)
    diffs = [rng.normal(0.0, 0.1, STRATA.size) for _ in range(3)]
    assert hierarchical_bootstrap(diffs, STRATA, resamples=500).ci_low < 0.0
    dropped = [d - 0.05 for d in diffs]
    assert hierarchical_bootstrap(dropped, STRATA, resamples=500).ci_high < 0.0

"""The losses of IPO, SimPO, ORPO, KTO and RLOO against values computed by hand from their
papers' equations, and the offline pairs they share with DPO."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from methods import dpo, pairs
from methods.ipo import ipo_loss
from methods.kto import kto_loss, reference_point
from methods.orpo import log_odds, odds_ratio_loss, orpo_loss
from methods.params import DPOParams
from methods.rloo import kl_shaped_rewards, leave_one_out_advantages, rloo_loss
from methods.simpo import simpo_loss


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def test_ipo_regresses_the_margin_onto_one_over_two_beta() -> None:
    # h = (-1 - -2) - (-3 - -2) = 2; beta 0.1: target 5, (2 - 5)^2 = 9; beta 0.5: (2 - 1)^2 = 1
    assert ipo_loss(t(-1), t(-3), t(-2), t(-2), beta=0.1).item() == pytest.approx(9.0)
    assert ipo_loss(t(-1), t(-3), t(-2), t(-2), beta=0.5).item() == pytest.approx(1.0)
    # at the target the loss is 0, and past it the loss grows again (unlike DPO's)
    assert ipo_loss(t(3), t(-2), t(-2), t(-2), beta=0.1).item() == pytest.approx(0.0)
    assert ipo_loss(t(8), t(-2), t(-2), t(-2), beta=0.1).item() == pytest.approx(25.0)


def test_simpo_is_logistic_on_the_scaled_length_normalised_margin_minus_gamma() -> None:
    # beta 2, gamma 1: 2 * -1 - 2 * -2 - 1 = 1; -log sigmoid(1) = log(1 + e^-1)
    loss = simpo_loss(t(-1), t(-2), beta=2.0, gamma=1.0)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    # gamma shifts the margin: with gamma 0 the same pair gives -log sigmoid(2)
    zero = simpo_loss(t(-1), t(-2), beta=2.0, gamma=0.0)
    assert zero.item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)


def test_orpo_log_odds_and_loss() -> None:
    # odds(0.5) = 1, odds(0.2) = 0.25: L_OR = -log sigmoid(log 4) = log(5/4)
    assert log_odds(t(math.log(0.5))).item() == pytest.approx(0.0, abs=1e-6)
    assert log_odds(t(math.log(0.2))).item() == pytest.approx(math.log(0.25), rel=1e-6)
    ratio = odds_ratio_loss(t(math.log(0.5)), t(math.log(0.2)))
    assert ratio.item() == pytest.approx(math.log(1.25), rel=1e-6)
    # chosen: two tokens at 0.5 (SFT NLL log 2); rejected: one token at 0.2 and one padding
    logps_w, mask_w = torch.full((1, 2), math.log(0.5)), torch.ones(1, 2)
    logps_l, mask_l = t(math.log(0.2), -9.0)[None], t(1, 0)[None]
    loss, per_pair = orpo_loss(logps_w, mask_w, logps_l, mask_l, lam=0.1)
    assert loss.item() == pytest.approx(math.log(2) + 0.1 * math.log(1.25), rel=1e-6)
    assert per_pair.item() == pytest.approx(math.log(1.25), rel=1e-6)


def test_kto_value_against_the_reference_point() -> None:
    # beta 1, z0 0.5: desirable r = 1 -> 1 - sigmoid(0.5); undesirable r = -1 -> 1 - sigmoid(1.5)
    def sig(x: float) -> float:
        return 1 / (1 + math.exp(-x))

    loss = kto_loss(t(1.0), t(-1.0), torch.tensor(0.5), beta=1.0)
    assert loss.item() == pytest.approx(((1 - sig(0.5)) + (1 - sig(1.5))) / 2, rel=1e-6)
    weighted = kto_loss(t(1.0), t(-1.0), torch.tensor(0.5), beta=1.0, desirable_weight=2.0)
    assert weighted.item() == pytest.approx((2 * (1 - sig(0.5)) + (1 - sig(1.5))) / 2, rel=1e-6)


def test_kto_reference_point_is_clamped_at_zero_and_detached() -> None:
    assert reference_point(t(-1.0, 0.5)).item() == 0.0  # mean -0.25: clamped
    assert reference_point(t(1.0, 2.0)).item() == pytest.approx(1.5)
    mismatched = t(1.0, 2.0).requires_grad_()
    z0 = reference_point(mismatched)
    rewards = t(0.3).requires_grad_()
    kto_loss(rewards, t(-0.2), z0).backward()
    assert mismatched.grad is None  # no gradient through z0
    assert rewards.grad is not None and rewards.grad.abs().item() > 0


def test_rloo_leave_one_out_baseline_and_reinforce_loss() -> None:
    # rewards 1, 2, 3: baselines (2+3)/2, (1+3)/2, (1+2)/2 -> advantages -1.5, 0, 1.5
    adv = leave_one_out_advantages(t(1, 2, 3, 5, 5, 5).view(2, 3))
    assert adv.tolist() == [[-1.5, 0.0, 1.5], [0.0, 0.0, 0.0]]
    # score 1, log-ratio -2 - -3 = 1, beta 0.5: 1 - 0.5 = 0.5
    assert kl_shaped_rewards(t(1), t(-2), t(-3), 0.5).item() == pytest.approx(0.5)
    # -(1 * -1 + -1 * -2) / 2 = -0.5
    assert rloo_loss(t(-1, -2), t(1, -1)).item() == pytest.approx(-0.5)


def test_offline_pairs_are_dpos(make_ctx: Any) -> None:
    """IPO, SimPO, ORPO and KTO train on the pairs DPO trains on (the same prompt budget): the
    same rows in the same rounds, the same reference log-probs, the same prompts charged."""
    overrides = ["budget.rounds=2", "budget.prompts_per_round=4"]
    ctx, _ = make_ctx("dpo", overrides=overrides)
    theirs = dpo.offline_rounds(ctx, DPOParams())
    charged = ctx.costs.prompts
    ours = pairs.offline_rounds(ctx, reference=True, chunk=16)
    assert charged == 8 and ctx.costs.prompts == 2 * charged
    assert len(ours) == len(theirs) == 2
    for a, b in zip(ours, theirs, strict=True):
        assert a.samples.prompts == b.samples.prompts
        assert a.samples.responses == b.samples.responses
        assert torch.equal(a.chosen, b.chosen) and torch.equal(a.rejected, b.rejected)
        assert a.ref_logps is not None and torch.allclose(a.ref_logps, b.ref_logps)
    free = pairs.offline_rounds(ctx, reference=False, chunk=16)
    assert all(r.ref_logps is None for r in free)

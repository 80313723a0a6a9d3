"""Every method loss against a value worked out by hand, plus the invariants the papers imply."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from methods.dpo import dpo_loss
from methods.grpo import group_advantages, grpo_loss, k3_kl
from methods.ppo import (
    AdaptiveKLController,
    FixedKLController,
    PPOParams,
    gae,
    kl_controller,
    kl_shaped_rewards,
    ppo_policy_loss,
    ppo_value_loss,
)
from methods.pro import pro_loss, pro_total
from methods.rrhf import rrhf_loss, rrhf_scores


def t(*values: object) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def close(actual: torch.Tensor | float, expected: float, tol: float = 1e-5) -> None:
    assert float(actual) == pytest.approx(expected, abs=tol)


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


# --------------------------------------------------------------------------- RRHF


def test_rrhf_scores_response_and_padded_lengths() -> None:
    logps = torch.tensor([[[-1.0, -2.0, -3.0], [-4.0, 0.0, 0.0]]])  # [B=1, K=2, T=3]
    mask = torch.tensor([[[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]])
    close(rrhf_scores(logps, mask, "response", 1.0)[0, 0], (-1 - 2 - 3) / 3)
    close(rrhf_scores(logps, mask, "response", 1.0)[0, 1], -4.0 / 1)
    close(rrhf_scores(logps, mask, "padded", 1.0)[0, 1], -4.0 / 3)  # divided by T = 3
    close(rrhf_scores(logps, mask, "response", 2.0)[0, 0], -6.0 / 3**2)
    close(rrhf_scores(logps, mask, "response", 0.0)[0, 0], -6.0)  # penalty 0: the plain sum


def test_rrhf_loss_by_hand() -> None:
    scores = t(-1.0, -2.0, -0.5)[None]  # [1, 3] p_0, p_1, p_2
    rewards = t(0.1, 0.9, 0.5)[None]  # order: r_0 < r_2 < r_1
    best_nll = t(2.5)
    # pairs with r_i < r_j: (0,1): max(0, -1 - -2) = 1; (0,2): max(0, -1 - -0.5) = 0;
    # (2,1): max(0, -0.5 - -2) = 1.5
    rank = max(0, -1.0 - (-2.0)) + max(0, -1.0 - (-0.5)) + max(0, -0.5 - (-2.0))
    loss, stats = rrhf_loss(scores, rewards, best_nll, rank_weight=2.0)
    close(loss, 2.0 * rank + 2.5)
    assert stats["rank_loss"] == pytest.approx(2.5)
    assert stats["ft_loss"] == pytest.approx(2.5)


def test_rrhf_rank_loss_is_batch_mean_and_ignores_ties() -> None:
    scores = torch.tensor([[0.0, 1.0], [5.0, -5.0]])
    rewards = torch.tensor([[0.0, 1.0], [3.0, 3.0]])  # row 0 ordered, row 1 a tie
    _, stats = rrhf_loss(scores, rewards, torch.zeros(2), 1.0)
    assert stats["rank_loss"] == 0.0
    scores = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # row 0 misordered by 1
    _, stats = rrhf_loss(scores, torch.tensor([[0.0, 1.0], [0.0, 1.0]]), torch.zeros(2), 1.0)
    assert stats["rank_loss"] == pytest.approx((1.0 + 0.0) / 2)


def test_rrhf_rank_loss_zero_when_scores_ordered_like_rewards() -> None:
    rewards = torch.randn(4, 5)
    scores = rewards * 3 - 7  # same order
    _, stats = rrhf_loss(scores, rewards, torch.zeros(4), 1.0)
    assert stats["rank_loss"] == 0.0


def test_rrhf_loss_falls_when_best_gets_likelier() -> None:
    rewards = t(0.0, 1.0)[None]
    low, _ = rrhf_loss(t(-1.0, -3.0)[None], rewards, t(3.0), 1.0)
    high, _ = rrhf_loss(t(-1.0, -2.0)[None], rewards, t(2.0), 1.0)
    assert high < low


# --------------------------------------------------------------------------- PRO


def test_pro_two_candidates_is_bradley_terry() -> None:
    scores = torch.tensor([[-2.0, -0.5], [0.3, -1.2]])
    rewards = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # best is column 0, then column 1
    s_best, s_other = torch.tensor([-2.0, -1.2]), torch.tensor([-0.5, 0.3])
    expected = -F.logsigmoid(s_best - s_other).mean()
    close(pro_loss(scores, rewards, reward_gap_scaling=False), float(expected))


def test_pro_three_candidates_by_hand() -> None:
    scores = t(-1.0, -3.0, -2.0)[None]  # candidate order by reward below: 0, 2, 1
    rewards = t(2.0, 0.0, 1.0)[None]
    s1, s2, s3 = -1.0, -2.0, -3.0  # sorted by reward, best first
    term1 = -math.log(math.exp(s1) / (math.exp(s1) + math.exp(s2) + math.exp(s3)))
    term2 = -math.log(math.exp(s2) / (math.exp(s2) + math.exp(s3)))
    close(pro_loss(scores, rewards, reward_gap_scaling=False), term1 + term2)


def test_pro_reward_gap_scaling_by_hand() -> None:
    scores = t(-1.0, -3.0, -2.0)[None]
    rewards = t(2.0, 0.0, 1.0)[None]
    (s1, r1), (s2, r2), (s3, r3) = (-1.0, 2.0), (-2.0, 1.0), (-3.0, 0.0)
    # k = 1: gaps r1 - r2 = 1, r1 - r3 = 2; s1 scaled by their max, 2
    g12, g13 = r1 - r2, r1 - r3
    top = s1 * max(g12, g13)
    term1 = math.log(math.exp(top) + math.exp(s2 * g12) + math.exp(s3 * g13)) - top
    # k = 2: gap r2 - r3 = 1 scales both
    g23 = r2 - r3
    term2 = math.log(math.exp(s2 * g23) + math.exp(s3 * g23)) - s2 * g23
    close(pro_loss(scores, rewards, reward_gap_scaling=True), term1 + term2)


def test_pro_total_adds_stage_scaled_sft() -> None:
    scores, rewards = t(-1.0, -3.0, -2.0)[None], t(2.0, 0.0, 1.0)[None]
    loss, stats = pro_total(scores, rewards, t(4.0), sft_weight=0.05, reward_gap_scaling=False)
    rank = float(pro_loss(scores, rewards, reward_gap_scaling=False))
    close(loss, rank + 0.05 * (3 - 1) ** 2 * 4.0)  # weight scaled by (K - 1)^2 = 4
    assert stats["sft_loss"] == pytest.approx(4.0)


def test_pro_loss_falls_when_best_gets_likelier() -> None:
    rewards = t(1.0, 0.0, 0.5)[None]
    low = pro_loss(t(-2.0, -1.0, -1.5)[None], rewards)
    high = pro_loss(t(-0.5, -1.0, -1.5)[None], rewards)
    assert high < low


# --------------------------------------------------------------------------- DPO


def test_dpo_at_the_reference_is_log_2() -> None:
    logps_w, logps_l = t(-5.0, -1.0), t(-7.0, -2.0)
    loss, chosen, rejected = dpo_loss(logps_w, logps_l, logps_w, logps_l, beta=0.1)
    for value in loss:
        close(value, math.log(2))
    assert chosen.tolist() == [0.0, 0.0] and rejected.tolist() == [0.0, 0.0]


def test_dpo_by_hand() -> None:
    # h = (-4 - -5) - (-9 - -7) = 1 + 2 = 3; beta * h = 0.3
    loss, chosen, rejected = dpo_loss(t(-4.0), t(-9.0), t(-5.0), t(-7.0), beta=0.1)
    close(loss[0], -log_sigmoid(0.1 * 3.0))
    close(chosen[0], 0.1 * 1.0)
    close(rejected[0], 0.1 * -2.0)


def test_dpo_label_smoothing_by_hand() -> None:
    eps, z = 0.2, 0.1 * 3.0
    loss, _, _ = dpo_loss(t(-4.0), t(-9.0), t(-5.0), t(-7.0), beta=0.1, label_smoothing=eps)
    close(loss[0], -(1 - eps) * log_sigmoid(z) - eps * log_sigmoid(-z))


# --------------------------------------------------------------------------- GRPO


def test_group_advantages_by_hand() -> None:
    rewards = t(1.0, 2.0, 3.0)[None]  # mean 2, unbiased std sqrt(((1)+(0)+(1))/2) = 1
    adv = group_advantages(rewards, eps=1e-4)
    close(adv[0, 0], -1 / (1 + 1e-4))
    close(adv[0, 1], 0.0)
    close(adv[0, 2], 1 / (1 + 1e-4))
    assert group_advantages(t(5.0, 5.0)[None]).abs().max() == 0  # a tied group learns nothing


def test_k3_kl_zero_at_reference_and_by_hand() -> None:
    logps = t(-1.0, -2.0, -0.3)
    assert k3_kl(logps, logps).abs().max() == 0
    # ref - logp = 0.5: e^0.5 - 0.5 - 1
    close(k3_kl(t(-1.5), t(-1.0))[0], math.exp(0.5) - 0.5 - 1)


def test_grpo_loss_by_hand() -> None:
    logps = torch.tensor([[-1.0, -2.0], [-0.5, 0.0]])  # [N=2, T=2]
    old = torch.tensor([[-1.0, -2.0 - math.log(1.5)], [-0.5, 0.0]])  # token (0,1): ratio 1.5
    ref = torch.tensor([[-1.0, -2.0], [-0.5 + 0.5, 0.0]])  # token (1,0): ref - logp = 0.5
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = t(2.0, -1.0)
    beta, clip = 0.04, 0.2
    # row 0: token 0 ratio 1 -> -2; token 1 ratio 1.5 clipped to 1.2 -> -min(3.0, 2.4) = -2.4
    row0 = (-2.0 + -2.4) / 2
    # row 1: one real token, ratio 1, A = -1 -> 1, plus beta * (e^0.5 - 0.5 - 1)
    row1 = 1.0 + beta * (math.exp(0.5) - 0.5 - 1)
    loss, stats = grpo_loss(logps, old, ref, adv, mask, clip=clip, beta=beta)
    close(loss, (row0 + row1) / 2)
    assert stats["clipfrac"] == pytest.approx(1 / 3)


def test_grpo_kl_term_zero_at_reference() -> None:
    logps = torch.randn(3, 4)
    mask = torch.ones(3, 4)
    loss, stats = grpo_loss(logps, logps, logps, torch.zeros(3), mask, beta=1.0)
    assert stats["kl"] == 0.0 and float(loss) == 0.0


# --------------------------------------------------------------------------- PPO


def test_kl_shaped_rewards_by_hand() -> None:
    logps = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, 0.0]])
    ref = torch.tensor([[-1.5, -2.0, -2.0], [-2.0, -1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards = kl_shaped_rewards(t(10.0, 20.0), logps, ref, mask, kl_coef=0.1)
    expected = [
        [-0.1 * 0.5, -0.1 * 0.0, -0.1 * -1.0 + 10.0],
        [-0.1 * 1.0, -0.1 * 0.0 + 20.0, 0.0],  # the score at the last real token, 0 on padding
    ]
    assert torch.allclose(rewards, torch.tensor(expected))


def test_gae_by_hand() -> None:
    rewards, values = t(1.0, 0.0, 2.0)[None], t(0.5, 1.0, 0.25)[None]
    mask = torch.ones(1, 3)
    gamma, lam = 0.9, 0.5
    d2 = 2.0 + gamma * 0.0 - 0.25
    d1 = 0.0 + gamma * 0.25 - 1.0
    d0 = 1.0 + gamma * 1.0 - 0.5
    a2 = d2
    a1 = d1 + gamma * lam * a2
    a0 = d0 + gamma * lam * a1
    adv, returns = gae(rewards, values, mask, gamma, lam)
    assert torch.allclose(adv, t(a0, a1, a2)[None])
    assert torch.allclose(returns, t(a0 + 0.5, a1 + 1.0, a2 + 0.25)[None])


def test_gae_lambda_one_zero_values_is_reward_to_go() -> None:
    rewards = torch.tensor([[1.0, 2.0, 3.0, 0.0], [0.5, -1.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
    adv, returns = gae(rewards, torch.zeros(2, 4), mask, gamma=1.0, lam=1.0)
    expected = torch.tensor([[6.0, 5.0, 3.0, 0.0], [-0.5, -1.0, 0.0, 0.0]])
    assert torch.allclose(returns, expected)
    assert torch.allclose(adv, expected)


def test_gae_episode_ends_at_last_real_token() -> None:
    values = torch.tensor([[0.0, 0.0, 9.0]])  # a value on padding must not leak back
    adv, _ = gae(torch.tensor([[0.0, 1.0, 0.0]]), values, torch.tensor([[1.0, 1.0, 0.0]]), 1, 1)
    assert torch.allclose(adv, torch.tensor([[1.0, 1.0, 0.0]]))


def test_ppo_policy_loss_by_hand() -> None:
    logps = torch.tensor([[math.log(1.5), math.log(0.5), 0.0]])  # ratios 1.5, 0.5 (old = 0)
    old = torch.zeros(1, 3)
    adv = torch.tensor([[1.0, 1.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    # token 0: max(-1.5, -1.2) = -1.2 (clipped); token 1: max(-0.5, -0.8) = -0.5 (unclipped)
    loss, clipfrac = ppo_policy_loss(logps, old, adv, mask, cliprange=0.2)
    close(loss, (-1.2 + -0.5) / 2)
    close(clipfrac, 0.5)


def test_ppo_clipped_token_has_zero_gradient() -> None:
    # positive advantage, ratio 1.5 > 1 + eps: the clipped side wins, the gradient is 0
    logps = torch.tensor([[math.log(1.5), math.log(1.1)]], requires_grad=True)
    loss, _ = ppo_policy_loss(logps, torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2), 0.2)
    loss.backward()
    assert logps.grad is not None
    assert logps.grad[0, 0] == 0.0
    assert logps.grad[0, 1] != 0.0  # inside the clip range the gradient flows


def test_ppo_value_loss_by_hand() -> None:
    values, old = t(2.0, 0.0)[None], t(1.0, 0.0)[None]
    returns, mask = t(1.5, 1.0)[None], torch.ones(1, 2)
    # token 0: V - R = 0.5; clipped V = 1 + 0.2 = 1.2, 1.2 - 1.5 = -0.3; max(0.25, 0.09) = 0.25
    # token 1: V - R = -1; clipped V = 0, -1; max(1, 1) = 1
    close(ppo_value_loss(values, old, returns, mask, 0.2), 0.5 * (0.25 + 1.0) / 2)
    # clipped side larger: V far from R but the clipped one farther
    values, old, returns = t(1.0)[None], t(0.0)[None], t(0.9)[None]
    # unclipped (1 - 0.9)^2 = 0.01; clipped (0.2 - 0.9)^2 = 0.49
    close(ppo_value_loss(values, old, returns, torch.ones(1, 1), 0.2), 0.5 * 0.49)


def test_adaptive_kl_controller_by_hand() -> None:
    ctl = AdaptiveKLController(init_kl_coef=0.2, target=6.0, horizon=10000)
    ctl.update(current_kl=9.0, n_steps=256)  # 9/6 - 1 = 0.5, clipped to 0.2
    close(ctl.value, 0.2 * (1 + 0.2 * 256 / 10000), 1e-9)
    before = ctl.value
    ctl.update(current_kl=5.4, n_steps=100)  # 5.4/6 - 1 = -0.1
    close(ctl.value, before * (1 - 0.1 * 100 / 10000), 1e-9)


def test_fixed_kl_controller_and_factory() -> None:
    ctl = FixedKLController(0.3)
    ctl.update(100.0, 1000)
    assert ctl.value == 0.3
    assert isinstance(kl_controller(PPOParams()), AdaptiveKLController)
    assert isinstance(kl_controller(PPOParams(kl_control="fixed")), FixedKLController)

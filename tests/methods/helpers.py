"""Helpers shared by the train-loop tests (``test_train_*.py``): parameter snapshots, the proxy
reward of a fixed set of samples, a train run between two such measurements, and the NaN
injections the divergence tests use."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

from methods import common, sampling
from methods.base import Progress
from methods.candidates import Candidates
from methods.sampling import SampleRequest


def snapshot(model: Any, trainable_only: bool = False) -> dict[str, torch.Tensor]:
    """A copy of ``model``'s parameters by name (only those that require grad if asked)."""
    return {
        name: p.detach().clone()
        for name, p in model.named_parameters()
        if p.requires_grad or not trainable_only
    }


def unchanged(model: Any, before: dict[str, torch.Tensor]) -> list[str]:
    """The names in ``before`` whose parameter in ``model`` still equals its snapshot."""
    after = dict(model.named_parameters())
    return [name for name, p in before.items() if torch.equal(p, after[name])]


def mean_proxy_reward(ctx: Any, model: Any, n_prompts: int = 64, k: int = 2) -> float:
    """Mean proxy reward of ``k`` samples on each of the first ``n_prompts`` training prompts,
    drawn with a fixed generator (the same draws for the base and the trained policy)."""
    gen = torch.Generator().manual_seed(1234)
    samples = sampling.sample(
        model,
        ctx.tokenizer,
        SampleRequest(
            ctx.prompts[:n_prompts],
            k,
            ctx.budget.max_new_tokens,
            ctx.decoding.temperature,
            ctx.decoding.top_p,
            gen,
        ),
        ctx.device,
    )
    return float(ctx.reward(samples.prompts, samples.responses).mean())


def train_and_measure(
    ctx: Any, train: Callable[[Any, Any], Any], params: Any, label: str
) -> tuple[float, float]:
    """``(base, trained)``: the mean proxy reward of the reference, then of the policy after
    ``train(ctx, params)`` (printed as ``label``)."""
    base = mean_proxy_reward(ctx, ctx.reference)
    train(ctx, params)
    trained = mean_proxy_reward(ctx, ctx.policy)
    print(f"{label}: proxy reward {base:.3f} -> {trained:.3f}")
    return base, trained


def nan_rewards_after_first_call(
    score: Callable[[list[str], list[str]], torch.Tensor],
) -> Callable[[list[str], list[str]], torch.Tensor]:
    """``score``, but all NaN from its second call on (the first round's rewards are real)."""
    calls: list[int] = []

    def nan_from_round_1(prompts: list[str], responses: list[str]) -> torch.Tensor:
        calls.append(len(responses))
        rewards = score(prompts, responses)
        return rewards if len(calls) == 1 else torch.full_like(rewards, math.nan)

    return nan_from_round_1


def nan_token_logps_after_first_step(
    monkeypatch: pytest.MonkeyPatch, steps: list[Progress]
) -> None:
    """Make ``common.token_logps`` return NaN while ``steps`` (the run's progress reports) holds
    exactly one step, i.e. at the step after the first."""
    token_logps = common.token_logps

    def poisoned(model: Any, samples: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        logps = token_logps(model, samples, *args, **kwargs)
        return logps * float("nan") if len(steps) == 1 else logps

    monkeypatch.setattr(common, "token_logps", poisoned)


def mixed_count_candidates(tokenizer: Any) -> Candidates:
    """Candidates of two prompts: one with 3 candidates and one with 2."""
    texts = sampling.pack(
        tokenizer,
        ["human how assistant"] * 3 + ["human why assistant"] * 2,
        ["one two", "no", "first boil water", "sorry", "good tea"],
        "cpu",
    )
    rewards = torch.tensor([0.5, -1.0, 2.0, 0.0, 1.0])
    return Candidates(texts, rewards, ["policy"] * 5, [[0, 1, 2], [3, 4]])

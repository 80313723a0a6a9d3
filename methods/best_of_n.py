"""Best-of-N: the base policy, answering with the best of N samples under the training reward."""

from __future__ import annotations

import math

import torch

from methods.base import Draw, Pool, Responses, TrainContext
from methods.common import charge
from methods.params import BestOfNParams


def best_of_n_kl(n: int) -> float:
    """Analytic KL(best-of-n || base) = log n - (n - 1) / n (Stiennon et al. 2020); an upper
    bound (Beirami et al. 2024)."""
    return math.log(n) - (n - 1) / n


def respond(ctx: TrainContext, params: BestOfNParams, prompts: list[str], draw: Draw) -> Responses:
    """``n`` samples per prompt from ``ctx.policy``, keeping the one the proxy reward
    ``ctx.reward`` scores highest (the first on ties). This is the method's inference-time spend:
    all n samples and their tokens go into ``ctx.costs`` (the reward model counts its own calls).
    The n samples of each prompt are handed back as the pool they were chosen from."""
    n = params.n
    samples = draw(ctx.policy, prompts, n)  # [P * n], row i * n + j: prompt i
    charge(ctx.costs, samples)
    rewards = ctx.reward(samples.prompts, samples.responses).reshape(len(prompts), n)  # [P, n]
    best = rewards.argmax(dim=1) + torch.arange(len(prompts), device=rewards.device) * n  # [P]
    pool = Pool(samples, rewards.reshape(-1), n, best)
    return Responses(samples.select(best), kl=best_of_n_kl(n), pool=pool)

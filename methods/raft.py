"""RAFT: Reward rAnked FineTuning (Dong et al. 2023).

Each round: sample K responses per prompt, score them, keep the best per prompt (``local``) or the
top fraction of the batch (``global``), and fine-tune on what was kept.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

from methods import common
from methods.base import TrainContext
from methods.params import RAFTParams
from methods.pretrain import PretrainMix
from methods.sampling import Samples, positions


def keep_best(
    rewards: torch.Tensor, k: int, selection: Literal["local", "global"], top_fraction: float
) -> torch.Tensor:
    """Indices ``[M]`` (ascending) of the samples RAFT fine-tunes on, from ``rewards [B * K]``
    where row ``i * K + j`` is the j-th sample of prompt i.

    ``'local'``: the best of each prompt's K (M = B; the first on a tie). ``'global'``: the
    ``ceil(top_fraction * B * K)`` best of the whole batch (at least one), wherever they fall.
    """
    if selection == "local":
        grouped = rewards.view(-1, k)  # [B, K]
        return grouped.argmax(dim=1) + k * torch.arange(len(grouped), device=rewards.device)  # [B]
    n_keep = max(1, math.ceil(top_fraction * len(rewards) - 1e-9))  # 1e-9: float error in 0.1*30
    return rewards.topk(n_keep).indices.sort().values  # [M]


def train(ctx: TrainContext, params: RAFTParams) -> None:
    """Each round: sample K per prompt from the current policy, score, keep the best
    (``keep_best``), then ``params.epochs`` passes of SFT over the kept samples in batches of
    ``params.batch_size``; the policy and the optimizer carry over to the next round. ``step``
    counts optimizer steps over the whole run."""
    gen = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
    step = common.OptimizerStep(ctx, ctx.policy.parameters(), params.lr, params.max_grad_norm)
    ptx = PretrainMix(ctx, params.ptx_coef)  # as PPO-ptx: + gamma * NLL of base-corpus text
    K = ctx.budget.samples_per_prompt
    for round_, prompts in common.rounds(ctx):
        samples = common.generate(ctx, ctx.policy, prompts, K, gen)  # [B * K]
        rewards = ctx.reward(samples.prompts, samples.responses)  # [B * K]
        index = keep_best(rewards, K, params.selection, params.top_fraction)  # [M]
        kept = samples.select(index)
        stats = {"kept_reward": float(rewards[index].mean())}
        ctx.policy.train()
        for _ in range(params.epochs):
            for start in range(0, len(kept), params.batch_size):
                batch = kept.select(list(range(start, min(start + params.batch_size, len(kept)))))
                logps, mask = _sft_logps(ctx.policy, batch, params.train_prompt_tokens)
                loss, ptx_stats = ptx(common.sft_loss(logps, mask))
                step(loss, round_, float(rewards.mean()), {**stats, **ptx_stats})
    ctx.policy.eval()


def _sft_logps(
    policy: Any, batch: Samples, train_prompt_tokens: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs and mask of the tokens fine-tuned on: the response tokens ``[n, T]``, or, with
    ``train_prompt_tokens``, every token after each row's first real one ``[n, P + T - 1]`` (the
    first has no context to be predicted from)."""
    if not train_prompt_tokens:
        return common.token_logps(policy, batch), batch.response_mask
    ids, attention = batch.input_ids, batch.attention_mask  # [n, P + T]
    logps = common.response_token_logps(policy, ids, attention, prompt_len=1)  # [n, P + T - 1]
    mask = attention[:, 1:] * (positions(attention)[:, 1:] > 0)  # [n, P + T - 1]
    return logps, mask

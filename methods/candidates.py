"""Candidate responses ranked per prompt by RRHF and PRO, drawn from several sources.

Sources (``params.candidates``): ``policy`` (the policy's own samples), ``reference`` (samples of
the frozen base policy ``ctx.reference``), ``chosen`` / ``rejected`` (the responses of a dataset
preference pair whose prompt text equals the prompt; the first such pair in ``ctx.preferences``;
a prompt with no pair simply gets no dataset candidates).

**Equal budget.** The ``K = budget.samples_per_prompt`` generations per prompt are split among the
generators listed (``policy``, ``reference``), in the order listed: ``K // G`` each, and one more
for each of the first ``K % G`` (K = 4, ``[policy, reference]``: 2 + 2; K = 3: 2 + 1). Dataset
responses are extra candidates: they cost no generation. Every candidate is scored by the reward
model, dataset responses included (the ranking uses the RM, not the dataset's labels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from methods import common
from methods.base import Candidate, PreferencePair, TrainContext
from methods.sampling import Samples, concat, pack, pad_id

GENERATORS: tuple[Candidate, ...] = ("policy", "reference")
GroupLoss = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]]
"""``group_loss(index [B_c, c]) -> (loss, statistics)`` of the prompts with ``c`` candidates."""


def split(sources: list[Candidate], k: int) -> dict[Candidate, int]:
    """Generations per prompt of each generator in ``sources``; they sum to ``k`` (to 0 when no
    generator is listed)."""
    generators = [s for s in dict.fromkeys(sources) if s in GENERATORS]
    share, extra = divmod(k, max(len(generators), 1))
    return {g: share + (1 if i < extra else 0) for i, g in enumerate(generators)}


def pairs_by_prompt(preferences: list[PreferencePair]) -> dict[str, PreferencePair]:
    """The first preference pair of each prompt text."""
    pairs: dict[str, PreferencePair] = {}
    for pair in preferences:
        pairs.setdefault(pair.prompt, pair)
    return pairs


def _trim(samples: Samples) -> Samples:
    """Without the all-padding columns a row selection can leave (left of the prompts, right of
    the responses): a mini-batch is padded to its own longest prompt and response."""
    P = int(samples.prompt_mask.sum(dim=1).max())
    T = int(samples.response_mask.sum(dim=1).max())
    return Samples(
        samples.prompt_ids[:, samples.prompt_len - P :],
        samples.prompt_mask[:, samples.prompt_len - P :],
        samples.response_ids[:, :T],
        samples.response_mask[:, :T],
        samples.prompts,
        samples.responses,
    )


@dataclass
class Candidates:
    """The scored candidates of a round's prompts (or of a mini-batch of them)."""

    samples: Samples  # [N] every candidate, in source order
    rewards: torch.Tensor  # [N] proxy-RM reward of each
    sources: list[Candidate]  # [N] where each came from
    groups: list[list[int]]  # per prompt: the rows of its candidates

    def batch(self, prompt_index: list[int]) -> Candidates:
        """The candidates of the prompts ``prompt_index`` only, rows renumbered."""
        rows = [r for i in prompt_index for r in self.groups[i]]
        groups, start = [], 0
        for i in prompt_index:
            groups.append(list(range(start, start + len(self.groups[i]))))
            start += len(self.groups[i])
        return Candidates(
            _trim(self.samples.select(rows)),
            self.rewards[rows],
            [self.sources[r] for r in rows],
            groups,
        )

    def by_count(self) -> list[torch.Tensor]:
        """Row indices ``[B_c, c]``: the prompts with ``c`` candidates, for each ``c`` present, so
        that ``logps[index]`` is ``[B_c, c, T]`` (a prompt lacking a dataset pair has fewer)."""
        counts = sorted({len(g) for g in self.groups if g})
        device = self.rewards.device
        return [
            torch.tensor([g for g in self.groups if len(g) == c], device=device) for c in counts
        ]

    def mean_over_prompts(
        self, group_loss: GroupLoss, zero: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """A loss and its statistics as the mean over prompts: ``group_loss(index)`` of each group
        of prompts with the same candidate count (``index [B_c, c]``, ``by_count``), weighted by
        the group's share of the prompts. ``zero`` is a 0-d tensor on the loss's device."""
        B = len(self.groups)
        total, stats = zero, dict[str, float]()
        for index in self.by_count():
            loss, parts = group_loss(index)
            total = total + loss * len(index) / B
            for key, value in parts.items():
                stats[key] = stats.get(key, 0.0) + value * len(index) / B
        return total, stats

    def prompt_batches(self, size: int) -> list[list[int]]:
        """Consecutive mini-batches of ``size`` prompts, leaving out prompts with no candidate."""
        ranked = [i for i, g in enumerate(self.groups) if g]
        return [ranked[i : i + size] for i in range(0, len(ranked), size)]

    def mean_reward(self) -> float:
        """Mean reward of the policy's own samples (of all candidates when it has none)."""
        own = [i for i, s in enumerate(self.sources) if s == "policy"]
        return float(self.rewards[own].mean() if own else self.rewards.mean())


def gather(
    ctx: TrainContext,
    prompts: list[str],
    sources: list[Candidate],
    pairs: dict[str, PreferencePair],
    gen: torch.Generator,
) -> Candidates:
    """Generate, collect and score the candidates of ``prompts`` (see the module docstring);
    the generations are charged to ``ctx.costs``."""
    B, parts = len(prompts), list[Samples]()
    labels: list[Candidate] = []
    groups: list[list[int]] = [[] for _ in prompts]
    for source, n in split(sources, ctx.budget.samples_per_prompt).items():
        if n == 0:
            continue
        model = ctx.policy if source == "policy" else _reference(ctx)
        start = sum(len(p) for p in parts)
        parts.append(common.generate(ctx, model, prompts, n, gen))  # row i * n + j: prompt i
        labels += [source] * (B * n)
        for i in range(B):
            groups[i] += range(start + i * n, start + (i + 1) * n)
    texts = _dataset_responses(prompts, sources, pairs)  # (prompt index, source, response)
    if texts:
        start = sum(len(p) for p in parts)
        index = [i for i, _, _ in texts]
        responses = [text for _, _, text in texts]
        prompts_i = [prompts[i] for i in index]
        # dataset responses are cut to the same token budget as the sampled candidates
        cap = ctx.budget.max_new_tokens
        parts.append(pack(ctx.tokenizer, prompts_i, responses, ctx.device, cap))
        labels += [kind for _, kind, _ in texts]
        for row, i in enumerate(index):
            groups[i].append(start + row)
    samples = concat(parts, pad_id(ctx.tokenizer), ctx.device)  # [N]
    rewards = ctx.reward(samples.prompts, samples.responses).to(ctx.device)  # [N]
    return Candidates(samples, rewards, labels, groups)


def _dataset_responses(
    prompts: list[str], sources: list[Candidate], pairs: dict[str, PreferencePair]
) -> list[tuple[int, Candidate, str]]:
    """``(prompt index, 'chosen' | 'rejected', response text)`` of each dataset candidate."""
    out: list[tuple[int, Candidate, str]] = []
    for i, prompt in enumerate(prompts):
        pair = pairs.get(prompt)
        if pair is None:
            continue
        if "chosen" in sources:
            out.append((i, "chosen", pair.chosen))
        if "rejected" in sources:
            out.append((i, "rejected", pair.rejected))
    return out


def _reference(ctx: TrainContext) -> Any:
    if ctx.reference is None:
        raise ValueError("candidates 'reference' need a reference policy, and ctx has none")
    return ctx.reference


PROMPTS_PER_STEP = 4  # prompts per optimizer step, each with all its candidates
RankedLoss = Callable[[Any, Candidates, Any], tuple[torch.Tensor, dict[str, float]]]
"""``loss(policy, batch, params) -> (loss, statistics)`` of a mini-batch of prompts' candidates."""


def train_ranked(ctx: TrainContext, params: Any, loss: RankedLoss) -> None:
    """The loop of the ranking methods (RRHF, PRO): each round, gather and score the candidates
    of the round's prompts (``gather``), then ``params.epochs`` passes over the prompts,
    ``PROMPTS_PER_STEP`` prompts per optimizer step. ``params`` has ``lr``, ``candidates``,
    ``epochs`` and ``max_grad_norm``."""
    gen = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
    step = common.OptimizerStep(ctx, ctx.policy.parameters(), params.lr, params.max_grad_norm)
    pairs = pairs_by_prompt(ctx.preferences)
    for round_, prompts in common.rounds(ctx):
        cands = gather(ctx, prompts, params.candidates, pairs, gen)  # [N]
        ctx.policy.train()
        for _ in range(params.epochs):
            for prompt_index in cands.prompt_batches(PROMPTS_PER_STEP):
                value, stats = loss(ctx.policy, cands.batch(prompt_index), params)
                step(value, round_, cands.mean_reward(), stats)
    ctx.policy.eval()

"""Our side of ``harness bench``: one runner per row, timing our own training loops.

Each runner builds fresh models (outside its timer), times our own loop on ``steps x batch_size``
items of the world's data, and counts its ``Work``: forward hooks on the policy and the reference,
plus ``Costs`` and the reward model's call counter.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from typing import Any

import torch

from harness.bench.config import (
    DPO_BETA,
    DPO_LR,
    GRPO_BETA,
    GRPO_CLIP,
    GRPO_LR,
    RM_LR,
    SEED,
    BenchConfig,
    Work,
)
from harness.bench.core import ForwardCounter, Run, StepClock
from harness.bench.world import BenchWorld, Runner, rm_pairs, take
from harness.builder import trainer
from harness.evaluation.evaluate import SAMPLE_BATCH
from harness.suite.generation import BackendName, vllm_missing
from methods import REGISTRY, dpo, grpo
from methods.base import Budget, Costs, Decoding, TrainContext
from methods.common import adamw, freeze
from methods.reward import RewardModel
from methods.sampling import SampleRequest, sample


class NoEosTokenizer:
    """The tokenizer without an EOS token: our sampler never stops early, so every completion is
    ``max_new_tokens`` long, like TRL's under ``min_new_tokens``."""

    eos_token_id = None

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._tokenizer(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)


# --------------------------------------------------------------------------- runners


def our_context(world: BenchWorld, method: str, budget: Budget, clock: StepClock) -> TrainContext:
    """A context as ``harness run`` builds it, with fresh policy and reference copies; every
    optimizer step ticks ``clock``."""
    return TrainContext(
        method=method,
        policy=copy.deepcopy(world.policy),
        reference=freeze(world.policy),
        tokenizer=world.tokenizer,
        reward=RewardModel(world.scorer, world.rm_tokenizer, "cpu", Costs()),
        prompts=[],
        preferences=[],
        budget=budget,
        decoding=Decoding(temperature=1.0, top_p=1.0),
        device=torch.device("cpu"),
        seed=SEED,
        progress=clock.tick,
    )


def _train_counted(
    ctx: TrainContext, train: Callable[[], None], clock: StepClock, pairs: bool = False
) -> Run:
    """Time ``train`` with forward counters on the policy and the reference. A sample is a
    generated response, or with ``pairs`` a pair (two rows of the policy's forward passes)."""
    policy, ref = ForwardCounter(ctx.policy, True), ForwardCounter(ctx.reference, False)
    try:
        clock.start()
        train()
        seconds = clock.elapsed()
    finally:
        policy.close()
        ref.close()
    work = Work(
        samples=policy.rows // 2 if pairs else ctx.costs.samples,
        train_tokens=policy.tokens,
        ref_tokens=ref.tokens,
        generated_tokens=ctx.costs.generated_tokens,
        reward_calls=getattr(ctx.reward, "costs", Costs()).reward_calls,
        optimizer_steps=ctx.costs.optimizer_steps,
    )
    return Run(seconds, clock.ends, work)


def ours_dpo(world: BenchWorld, cfg: BenchConfig) -> Run:
    """``methods.dpo.train`` on ``steps x batch_size`` dataset pairs, one epoch, one round."""
    n = cfg.steps * cfg.batch_size
    # offline DPO cuts dataset responses at the budget's max_new_tokens, and DPOTrainer cuts only
    # whole sequences (max_length): neither side cuts here, up to the model's context
    context = int(world.policy.config.max_position_embeddings)
    clock = StepClock()
    ctx = our_context(world, "dpo", Budget(n, 1, 1, context), clock)
    ctx.preferences = take(world.pairs, n, "preference pairs")
    params = dpo.DPOParams(lr=DPO_LR, beta=DPO_BETA, batch_size=cfg.batch_size, epochs=1)
    return _train_counted(ctx, lambda: dpo.train(ctx, params), clock, pairs=True)


def ours_grpo(world: BenchWorld, cfg: BenchConfig) -> Run:
    """``methods.grpo.train``: ``steps`` rounds of ``batch_size`` prompts x ``group_size``
    completions, one optimizer step per round."""
    budget = Budget(cfg.batch_size, cfg.steps, cfg.group_size, cfg.max_new_tokens)
    clock = StepClock()
    ctx = our_context(world, "grpo", budget, clock)
    ctx.tokenizer = NoEosTokenizer(world.tokenizer)
    ctx.prompts = take(world.prompts, cfg.steps * cfg.batch_size, "train prompts")
    params = grpo.GRPOParams(
        lr=GRPO_LR,
        beta=GRPO_BETA,
        clip=GRPO_CLIP,
        group_size=cfg.group_size,
        iterations=1,
        mini_batch_size=cfg.batch_size * cfg.group_size,
    )
    return _train_counted(ctx, lambda: grpo.train(ctx, params), clock)


def bt_train(
    model: Any,
    tokenizer: Any,
    pairs: list[dict[str, str]],
    batch_size: int,
    lr: float,
    on_step: Callable[[], None],
) -> int:
    """One epoch of ``harness.builder.trainer.bradley_terry_epoch`` (the world's reward-model loop,
    without its schedule) at a constant ``lr``. Returns the optimizer steps taken."""
    opt = adamw(model.parameters(), lr=lr, weight_decay=0.0)
    steps = trainer.bradley_terry_epoch(
        model, tokenizer, pairs, batch_size, opt, random.Random(SEED), on_step
    )
    model.eval()
    return steps


def ours_rm(world: BenchWorld, cfg: BenchConfig) -> Run:
    """``bt_train`` on ``steps x batch_size`` pairs, from the proxy RM's weights."""
    model = copy.deepcopy(world.rm_base)
    pairs = rm_pairs(world, cfg.steps * cfg.batch_size)
    counter, clock = ForwardCounter(model, True), StepClock()
    try:
        clock.start()
        steps = bt_train(model, world.rm_tokenizer, pairs, cfg.batch_size, RM_LR, clock.tick)
        seconds = clock.elapsed()
    finally:
        counter.close()
    work = Work(samples=counter.rows // 2, train_tokens=counter.tokens, optimizer_steps=steps)
    return Run(seconds, clock.ends, work)


def _timed_draw(
    world: BenchWorld, prompts: list[str], n: int, max_new_tokens: int, rows: int | None = None
) -> Run:
    """``methods.sampling.sample`` of ``n`` samples per prompt from a fresh copy of the world's
    policy, ``rows`` rows a KV-cached pass (all at once: None), stopping at EOS; timed, and a
    sample is a generated token."""
    policy = copy.deepcopy(world.policy)
    gen = torch.Generator().manual_seed(SEED)
    t0 = time.perf_counter()
    samples = sample(
        policy,
        world.tokenizer,
        SampleRequest(prompts, n, max_new_tokens, 1.0, 1.0, gen, rows),
        "cpu",
    )
    seconds = time.perf_counter() - t0
    tokens = int(samples.response_mask.sum())
    return Run(seconds, [], Work(samples=tokens, train_tokens=0, generated_tokens=tokens))


def ours_generation(world: BenchWorld, cfg: BenchConfig) -> Run:
    """``group_size`` samples for each of ``batch_size`` prompts, as training draws them."""
    prompts = take(world.prompts, cfg.batch_size, "train prompts")
    return _timed_draw(world, prompts, cfg.group_size, cfg.max_new_tokens)


EVAL_PROMPTS = 256  # prompts of the eval_generation rows, 2 answers each


def ours_eval_generation(rows_per_pass: int) -> Runner:
    """The evaluation's draw (``harness.evaluation.evaluate.sampler``'s): 2 answers to each of 256
    prompts, ``rows_per_pass`` rows per KV-cached pass."""

    def run(world: BenchWorld, cfg: BenchConfig) -> Run:
        prompts = take(world.prompts, EVAL_PROMPTS, "train prompts")
        return _timed_draw(world, prompts, 2, cfg.max_new_tokens, rows_per_pass)

    return run


def ours_generation_on(backend: BackendName) -> Runner:
    """The ``backend`` generation backend's ``sample``: ``group_size`` samples for each of
    ``batch_size`` prompts, every one ``max_new_tokens`` long (no EOS, so every backend generates
    the very same number of tokens), from ``world.generation_policy`` (the same model for every
    backend); a sample is a generated token. The backend is started outside the timer."""

    def run(world: BenchWorld, cfg: BenchConfig) -> Run:
        assert world.backends is not None
        generation = world.backends.get(backend)
        prompts = take(world.prompts, cfg.batch_size, "train prompts")
        tokenizer = NoEosTokenizer(world.tokenizer)
        gen = torch.Generator().manual_seed(SEED)
        model = world.generation_policy
        t0 = time.perf_counter()
        samples = generation.sample(
            model,
            tokenizer,
            SampleRequest(prompts, cfg.group_size, cfg.max_new_tokens, 1.0, 1.0, gen),
            "cpu",
        )
        seconds = time.perf_counter() - t0
        tokens = int(samples.response_mask.sum())
        return Run(seconds, [], Work(samples=tokens, train_tokens=0, generated_tokens=tokens))

    return run


def ours_method(name: str) -> Runner:
    """A one-round run of ``methods.<name>.train`` with its default params: ``batch_size``
    prompts, ``group_size`` samples each; a sample is a generated response."""

    def run(world: BenchWorld, cfg: BenchConfig) -> Run:
        method = REGISTRY[name]
        train = method.train_fn()
        if train is None:
            raise ValueError(f"{name} trains nothing: no throughput to measure")
        budget = Budget(cfg.batch_size, 1, cfg.group_size, cfg.max_new_tokens)
        clock = StepClock()
        ctx = our_context(world, name, budget, clock)
        ctx.prompts = take(world.prompts, cfg.batch_size, "train prompts")
        ctx.preferences = list(world.pairs)
        params = method.params()
        run = _train_counted(ctx, lambda: train(ctx, params), clock)
        return Run(run.seconds, [], run.work)  # no steady rate: samples are drawn up front

    return run


ROWS: dict[str, tuple[str, Runner]] = {
    "dpo": ("pairs", ours_dpo),
    "grpo": ("completions", ours_grpo),
    "reward_model": ("pairs", ours_rm),
    "generation": ("tokens", ours_generation),
    "generation.hf": ("tokens", ours_generation_on("hf")),
    "generation.vllm": ("tokens", ours_generation_on("vllm")),
    "eval_generation": ("tokens", ours_eval_generation(SAMPLE_BATCH)),
    "eval_generation_64": ("tokens", ours_eval_generation(64)),  # the evaluation's batch before
    **{name: ("samples", ours_method(name)) for name in ("ppo", "rrhf", "raft", "pro")},
}
"""Every row in report order, as (unit, our runner); ``harness.bench.trl.RUNNERS`` has TRL's."""

REQUIRES: dict[str, Callable[[], str | None]] = {"generation.vllm": vllm_missing}
"""Rows that need an optional extra: why the row cannot run here (None: it can)."""

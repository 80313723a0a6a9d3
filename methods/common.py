"""Shared building blocks of every training loop: token log-probs, SFT loss, masked statistics,
the two steps every loop takes the same way: drawing samples (and charging their cost) and
taking an optimizer step (and reporting it), and the forward meter that charges every other
forward pass of the policy and the reference (``metered``).

Samples and their layout live in ``methods.sampling``; reward models in ``methods.reward``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import torch
import torch.nn.functional as F

from methods import distributed
from methods.base import Costs, DivergenceError, Progress, TrainContext, prompt_rounds
from methods.sampling import SampleRequest, Samples, accepts_logits_to_keep, positions, sampling_now

T = TypeVar("T")

# --------------------------------------------------------------------------- log-probs


def response_token_logps(
    model: Any,
    input_ids: torch.Tensor,  # [B, P + T]
    attention_mask: torch.Tensor,  # [B, P + T]
    prompt_len: int,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Log-prob ``[B, T]`` of each token after ``prompt_len`` given everything before it.

    Position ids come from the attention mask (left padding); logits are shifted by one and
    log-softmaxed in float32, only over response positions; masked positions get 0.
    """
    T = input_ids.shape[1] - prompt_len
    kwargs: dict[str, Any] = {}
    if accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = T + 1  # skip the LM head over the prompt
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=positions(attention_mask),
        use_cache=False,
        **kwargs,
    )
    logits = out.logits[:, -(T + 1) : -1, :].float()  # [B, T, V] predicts tokens prompt_len..
    if temperature != 1.0:
        logits = logits / temperature
    targets = input_ids[:, prompt_len:]  # [B, T]
    logps = logits.gather(-1, targets[..., None]).squeeze(-1) - logits.logsumexp(dim=-1)
    return logps.masked_fill(attention_mask[:, prompt_len:] == 0, 0.0)


def token_logps(
    model: Any, samples: Samples, temperature: float = 1.0, batch_size: int | None = None
) -> torch.Tensor:
    """Log-probs ``[N, T]`` of the response tokens of ``samples`` under ``model`` (0 where
    ``response_mask`` is 0), computed ``batch_size`` rows at a time. Grad flows unless the caller
    wraps it in ``torch.no_grad()`` (as for a frozen reference)."""
    step = batch_size or max(len(samples), 1)
    ids, mask = samples.input_ids, samples.attention_mask
    P, T = samples.prompt_len, samples.response_ids.shape[1]
    parts = []
    for i in range(0, len(samples), step):
        # each chunk cut to its own width: no forward over columns that are padding in every row
        start, end = _real_columns(
            samples.prompt_mask[i : i + step], samples.response_mask[i : i + step]
        )
        logps = response_token_logps(
            model,
            ids[i : i + step, start:end],
            mask[i : i + step, start:end],
            P - start,
            temperature,
        )  # [b, end - P]
        parts.append(F.pad(logps, (0, T - logps.shape[1])))
    return torch.cat(parts, dim=0)


def _real_columns(prompt_mask: torch.Tensor, response_mask: torch.Tensor) -> tuple[int, int]:
    """[start, end) of the columns of ``prompt + response`` that hold a real token in some row:
    left padding shared by every row is skipped, and so is right padding shared by every row."""
    P = prompt_mask.shape[1]
    prompt_cols = prompt_mask.any(dim=0).nonzero()
    response_cols = response_mask.any(dim=0).nonzero()
    start = int(prompt_cols[0]) if len(prompt_cols) else P
    end = P + (int(response_cols[-1]) + 1 if len(response_cols) else 0)
    return start, end


def sequence_logps(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum_t logps[b, t]`` over real tokens: ``[B, T] -> [B]`` (the sequence log-likelihood)."""
    return (logps * mask).sum(dim=-1)


def mean_logps(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Length-normalised log-likelihood ``[B, T] -> [B]``: sum over real tokens / their count."""
    return sequence_logps(logps, mask) / mask.sum(dim=-1).clamp(min=1)


def sft_loss(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean token NLL over all real tokens of the batch: ``-sum(logps * mask) / sum(mask)``."""
    return -(logps * mask).sum() / mask.sum().clamp(min=1)


# --------------------------------------------------------------------------- utilities


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` is 1 (over ``dim``, or all)."""
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1)
    return (values * mask).sum(dim=dim) / mask.sum(dim=dim).clamp(min=1)


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of ``values`` where ``mask`` is 1 (Bessel-corrected when 2+ values, as TRL)."""
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    count = mask.sum()
    if unbiased and count > 1:
        var = var * count / (count - 1)
    return var


def masked_whiten(
    values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True
) -> torch.Tensor:
    """``(values - mean) / sqrt(var + 1e-8)`` over masked entries; the mean added back when not
    ``shift_mean`` (TRL's ``masked_whiten``)."""
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    return whitened if shift_mean else whitened + mean


def adamw(params: Any, lr: float, weight_decay: float = 0.01) -> torch.optim.AdamW:
    """AdamW (torch defaults otherwise), fused: one kernel over all parameters instead of a loop
    of small ops (optimizer step 1.10 -> 0.24 ms on the tiny policy, measured)."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)


def logp_temperature(temperature: float) -> float:
    """The temperature of the distribution actually sampled from; greedy decoding (0) has none,
    so its log-probs are taken at 1."""
    return temperature or 1.0


def minibatches(n: int, size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A seeded shuffle of ``range(n)`` cut into CPU index tensors ``[<= size]``; none if n is 0.
    In a run spread over several workers, each gets its share of every mini-batch
    (``distributed.share``: the same shuffle on every worker, split among them)."""
    batches = torch.randperm(n, generator=generator).split(size) if n else ()
    return [distributed.share(batch) for batch in batches]


def check_finite(loss: torch.Tensor | float, method: str, round_: int, step: int) -> None:
    """Raise ``DivergenceError`` when ``loss`` is NaN or infinite."""
    value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
    if not math.isfinite(value):
        raise DivergenceError(method, round_, step, value)


def freeze(model: Any) -> Any:
    """A frozen copy of ``model`` (eval mode, no grad), e.g. the reference policy."""
    frozen = copy.deepcopy(model)
    frozen.eval()
    for param in frozen.parameters():
        param.requires_grad_(False)
    return frozen


# --------------------------------------------------------------------------- the loop's two steps


def checkpointed(ctx: TrainContext, items: Iterable[T]) -> Iterator[T]:
    """Each round's ``items`` in turn, with ``ctx.checkpoint(r)`` called after r rounds: once
    before the first (the base policy) and after each round's training, that is when the loop
    asks for the next round (and after the last, when it finds there is none). Every training
    loop's rounds pass through here (``rounds``; DPO's offline pairs directly)."""
    ctx.checkpoint(0)
    for round_, item in enumerate(items):
        yield item
        ctx.checkpoint(round_ + 1)


def rounds(ctx: TrainContext) -> Iterator[tuple[int, list[str]]]:
    """``(round, prompts)`` of the run's prompt stream (``prompt_rounds``: the same for every
    method under one seed), through ``checkpointed``; each round's prompts are charged to
    ``ctx.costs`` as it starts."""
    stream = enumerate(prompt_rounds(ctx.prompts, ctx.budget, ctx.seed))
    for round_, prompts in checkpointed(ctx, stream):
        ctx.costs.prompts += len(prompts)
        yield round_, prompts


def charge(costs: Costs, samples: Samples) -> None:
    """Charge generated ``samples`` to ``costs``: the samples, their generated tokens, and their
    prompts' tokens as forward tokens (each row's prompt is prefilled once)."""
    costs.samples += len(samples)
    costs.generated_tokens += int(samples.lengths.sum())
    costs.forward_tokens += int(samples.prompt_mask.sum())


def generate(
    ctx: TrainContext, model: Any, prompts: list[str], n: int, generator: torch.Generator
) -> Samples:
    """``n`` responses per prompt from ``model`` (row ``i * n + j``: the j-th to prompt i) with the
    run's TRAINING decoding (``ctx.decoding``) and token budget, through the run's generation
    backend (``ctx.generation``), charged to ``ctx.costs``. Every training loop samples through
    here. In a run spread over several workers each draws its share of the prompts and every
    worker gets all the samples (``distributed.sample_in_shares``)."""
    request = SampleRequest(
        prompts,
        n=n,
        max_new_tokens=ctx.budget.max_new_tokens,
        temperature=ctx.decoding.temperature,
        top_p=ctx.decoding.top_p,
        generator=generator,
    )
    samples = distributed.sample_in_shares(
        ctx.generation, model, ctx.tokenizer, request, ctx.device
    )
    charge(ctx.costs, samples)
    return samples


class OptimizerStep:
    """The one optimizer step of every training loop (AdamW, ``adamw``): check the loss is
    finite, zero the gradients, backpropagate, clip the gradient norm, step, count the step in
    ``ctx.costs`` and report it with the loss's statistics through ``ctx.progress``. Each step
    bumps the parameters' version counters (the fused kernel does not), which is how a generation
    backend holding a copy of the weights (vllm) knows they changed.

    Of ``parameters`` it optimizes those that require grad: all of a fully trained policy, the
    adapters alone of a LoRA policy (``harness.load.lora``; its base weights are frozen), so frozen
    weights get neither gradients nor optimizer state.

    ``step(loss, round_, mean_reward, stats, weight)`` takes one step; ``step.count`` is the
    number of steps taken so far over the whole run. ``weight`` is what ``loss`` is a mean over
    (its rows, or its tokens): in a run spread over several workers, each holding a share of the
    mini-batch, it makes the step the one over the whole mini-batch (``distributed.reduce_loss``);
    None weighs every worker's share the same. With one worker it changes nothing."""

    def __init__(
        self,
        ctx: TrainContext,
        parameters: Iterable[torch.nn.Parameter],
        lr: float,
        max_grad_norm: float,
    ) -> None:
        self.ctx = ctx
        self.parameters = [p for p in parameters if p.requires_grad]
        self.optimizer = adamw(distributed.param_groups(self.parameters), lr=lr)
        self.max_grad_norm = max_grad_norm
        self.count = 0

    def __call__(
        self,
        loss: torch.Tensor,
        round_: int,
        mean_reward: float | None = None,
        stats: dict[str, float] | None = None,
        weight: float | torch.Tensor | None = None,
    ) -> None:
        weight = float(weight) if weight is not None else None
        loss, value, stats = distributed.reduce_loss(loss, weight, stats or {})
        check_finite(value, self.ctx.method, round_, self.count)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.sync_replicated(self.parameters)
        grad_norm = distributed.clip(self.parameters, self.max_grad_norm)
        self.optimizer.step()
        for param in self.parameters:  # fused AdamW updates in place without saying so:
            torch.autograd.graph.increment_version(param)  # a generation backend sees the change
        self.ctx.costs.optimizer_steps += 1
        report = {"loss": value, "grad_norm": grad_norm, **stats}
        self.ctx.progress(Progress(round_, self.count, value, mean_reward, report))
        self.count += 1


# --------------------------------------------------------------------------- the forward meter

_CHARGING: ContextVar[bool] = ContextVar("charging", default=True)


@contextmanager
def uncharged() -> Iterator[None]:
    """Forward passes inside are charged to no one, even under ``metered``: the harness's own
    work inside a training run (e.g. evaluating a checkpoint) is not the method's spend."""
    token = _CHARGING.set(False)
    try:
        yield
    finally:
        _CHARGING.reset(token)


def _meter(model: Any, costs: Costs) -> Any:
    """A forward pre-hook on ``model`` charging each pass's real tokens (the attention mask's
    ones; every input id without a mask) to ``costs``: ``trained_tokens`` when gradients are on
    and ``model`` has trainable parameters, else ``forward_tokens``. Passes of a generation
    (``sampling.sample``: ``charge`` counts those) and under ``uncharged`` are skipped."""
    trainable = any(p.requires_grad for p in model.parameters())

    def count(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if sampling_now() or not _CHARGING.get():
            return
        mask = kwargs.get("attention_mask")
        ids = kwargs.get("input_ids", args[0] if args else None)
        if mask is not None:
            tokens = int(mask.sum())
        elif ids is not None:
            tokens = int(ids.numel())
        else:
            return
        if trainable and torch.is_grad_enabled():
            costs.trained_tokens += tokens
        else:
            costs.forward_tokens += tokens

    return model.register_forward_pre_hook(count, with_kwargs=True)


@contextmanager
def metered(ctx: TrainContext) -> Iterator[None]:
    """While inside, every forward pass of ``ctx.policy`` and ``ctx.reference`` (however a
    method makes it: ``token_logps``, its own call, a value head's pass) is charged to
    ``ctx.costs`` as forward or trained tokens (``_meter``); generation is charged by
    ``generate``/``charge`` and the reward model by itself. The harness trains inside it, so
    no method charges a forward pass itself."""
    # a LoRA reference (``harness.load.lora.BaseView``) is no module: its passes run through the
    # policy's own, which the policy's hook charges (without gradients: as forward tokens)
    models = [m for m in (ctx.policy, ctx.reference) if isinstance(m, torch.nn.Module)]
    handles = [_meter(m, ctx.costs) for m in models]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()

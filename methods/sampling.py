"""Responses as token sequences: the shared ``Samples`` layout, packing text pairs into it, and
KV-cached sampling from a causal LM.

Layout used everywhere (``Samples``): prompts LEFT-padded ``[N, P]``, responses RIGHT-padded
``[N, T]``; ``response_mask`` is 1 on real response tokens (the EOS token included when one was
generated) and 0 after. Generated samples and text pairs packed from a dataset share this layout, so
one log-prob function serves both.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

# --------------------------------------------------------------------------- samples


@dataclass
class Samples:
    """A batch of (prompt, response) token sequences in the shared layout."""

    prompt_ids: torch.Tensor  # [N, P] left-padded
    prompt_mask: torch.Tensor  # [N, P]
    response_ids: torch.Tensor  # [N, T] right-padded with the pad id
    response_mask: torch.Tensor  # [N, T] 1 on real response tokens (EOS included)
    prompts: list[str]  # [N]
    responses: list[str]  # [N] decoded without special tokens

    @property
    def input_ids(self) -> torch.Tensor:  # [N, P + T]
        return torch.cat([self.prompt_ids, self.response_ids], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:  # [N, P + T]
        return torch.cat([self.prompt_mask, self.response_mask], dim=1)

    @property
    def lengths(self) -> torch.Tensor:  # [N] response tokens per row
        return self.response_mask.sum(dim=1)

    @property
    def prompt_len(self) -> int:
        return int(self.prompt_ids.shape[1])

    def __len__(self) -> int:
        return int(self.prompt_ids.shape[0])

    def select(self, index: list[int] | torch.Tensor) -> Samples:
        """The rows ``index`` (in that order), e.g. a minibatch or the best of K."""
        rows = torch.as_tensor(index, dtype=torch.long).tolist()
        pick = torch.tensor(rows, dtype=torch.long, device=self.prompt_ids.device)
        return Samples(
            prompt_ids=self.prompt_ids[pick],
            prompt_mask=self.prompt_mask[pick],
            response_ids=self.response_ids[pick],
            response_mask=self.response_mask[pick],
            prompts=[self.prompts[i] for i in rows],
            responses=[self.responses[i] for i in rows],
        )


def pad_id(tokenizer: Any) -> int:
    """The tokenizer's pad id, falling back to EOS (as most causal LMs do)."""
    pid = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pid is None:
        raise ValueError("the tokenizer has neither a pad nor an EOS token")
    return int(pid)


def encode_prompts(
    tokenizer: Any, prompts: list[str], device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenise prompts LEFT-padded, whatever the tokenizer's ``padding_side``.

    Returns ids and mask ``[N, P]``; special tokens are added as the tokenizer does by default
    (e.g. BOS)."""
    ids = tokenizer(prompts, add_special_tokens=True)["input_ids"] if prompts else []
    return pad_rows([list(x) for x in ids], pad_id(tokenizer), device, left=True)


def pad_rows(
    rows: list[list[int]], pad: int, device: torch.device | str, left: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows as ids and mask ``[N, max len]``, padded on the left or the right."""
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)  # [N]
    width = int(lengths.max()) if rows else 0
    cols = torch.arange(width)  # [W]
    real = cols >= width - lengths[:, None] if left else cols < lengths[:, None]  # [N, W]
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    ids[real] = torch.tensor([t for r in rows for t in r], dtype=torch.long)  # row-major order
    return ids.to(device), real.long().to(device)


def _decode(tokenizer: Any, ids: torch.Tensor, mask: torch.Tensor) -> list[str]:
    rows = [row[m.bool()].tolist() for row, m in zip(ids.cpu(), mask.cpu(), strict=True)]
    return list(tokenizer.batch_decode(rows, skip_special_tokens=True)) if rows else []


def pack(
    tokenizer: Any,
    prompts: list[str],
    responses: list[str],
    device: torch.device | str,
    max_response_tokens: int | None = None,
) -> Samples:
    """Given text pairs (e.g. dataset chosen/rejected) as ``Samples``: prompt left-padded, response
    right-padded with EOS appended. A response cut at ``max_response_tokens`` loses its EOS, as a
    generation cut at ``max_new_tokens`` has none."""
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts, device)
    eos = tokenizer.eos_token_id
    rows = []
    for r in tokenizer(responses, add_special_tokens=False)["input_ids"]:
        row = [*r, eos] if eos is not None else list(r)
        rows.append(row[:max_response_tokens] if max_response_tokens is not None else row)
    response_ids, response_mask = pad_rows(rows, pad_id(tokenizer), device, left=False)
    return Samples(prompt_ids, prompt_mask, response_ids, response_mask, prompts, responses)


def from_rows(
    tokenizer: Any,
    prompts: list[str],
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    rows: list[list[int]],
) -> Samples:
    """``Samples`` of responses given as token rows (one per prompt row, EOS kept where it was
    drawn), e.g. from another generation backend: right-padded with the pad id, mask 1 on every
    token of a row, decoded without special tokens."""
    response_ids, response_mask = pad_rows(rows, pad_id(tokenizer), prompt_ids.device, left=False)
    responses = _decode(tokenizer, response_ids, response_mask)
    return Samples(prompt_ids, prompt_mask, response_ids, response_mask, prompts, responses)


# --------------------------------------------------------------------------- sampling

_SAMPLING: ContextVar[bool] = ContextVar("sampling", default=False)


def sampling_now() -> bool:
    """True inside ``sample``: a model's forward pass there is a generation step (charged by
    ``methods.common.charge`` as generated and prompt tokens, not by the forward meter)."""
    return _SAMPLING.get()


@contextmanager
def _sampling() -> Iterator[None]:
    token = _SAMPLING.set(True)
    try:
        yield
    finally:
        _SAMPLING.reset(token)


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids from an attention mask ``[B, L]``: 0 at each row's first real token."""
    return (mask.long().cumsum(dim=-1) - 1).clamp(min=0)


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering of ``logits [B, V]``: keep the smallest set of tokens whose probability
    reaches ``top_p`` (the most likely token always kept); the rest become -inf."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # [B, V]
    probs = sorted_logits.softmax(dim=-1)
    drop_sorted = probs.cumsum(dim=-1) - probs > top_p  # mass before this token already enough
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def next_tokens(
    logits: torch.Tensor, temperature: float, top_p: float, uniform: torch.Tensor | None
) -> torch.Tensor:
    """One token per row from ``logits [B, V]``: argmax when ``temperature == 0``, else the
    inverse-CDF draw at ``uniform [B]`` (in [0, 1), one per row) from the temperature-scaled,
    top-p-filtered distribution."""
    if not torch.isfinite(logits.sum()):  # a NaN or an infinity anywhere makes the sum one
        raise FloatingPointError("the policy's logits are NaN or infinite: the model diverged")
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = top_p_filter(logits.float() / temperature, top_p).softmax(dim=-1)  # [B, V]
    # inverse-CDF draw: one uniform per row (exact; 25% faster than multinomial per round)
    if uniform is None:
        uniform = torch.rand(probs.shape[0], device=probs.device)
    cdf = probs.to(uniform.device).cumsum(dim=-1)  # [B, V]
    u = uniform[:, None].to(cdf.dtype) * cdf[:, -1:]  # [B, 1]
    drawn = torch.searchsorted(cdf, u, right=True).clamp(max=cdf.shape[-1] - 1)  # [B, 1]
    return drawn.squeeze(-1).to(logits.device)


def row_uniforms(
    rows: int, max_new_tokens: int, temperature: float, generator: torch.Generator | None
) -> torch.Tensor | None:
    """The uniform that draws each row's token at each step ``[rows, max_new_tokens]``, drawn at
    once from ``generator`` (on its device): a row's tokens depend on the generator and the row's
    place in the request, never on which rows share a forward pass, so a request drawn in batches,
    or in shares on several workers, draws what it draws whole. None when decoding greedily (the
    generator is left as it is)."""
    if temperature == 0:
        return None
    device = generator.device if generator is not None else "cpu"
    return torch.rand(rows, max_new_tokens, generator=generator, device=device)


@torch.no_grad()
def _generate(
    model: Any,
    prompt_ids: torch.Tensor,  # [B, P]
    prompt_mask: torch.Tensor,  # [B, P]
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    uniforms: torch.Tensor | None,  # [B, max_new_tokens]: row_uniforms
    eos: int | None,
    pad: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """KV-cached decoding loop: response ids and mask ``[B, T]`` with T <= max_new_tokens.

    A row that has emitted EOS leaves the forward pass (its cache rows are dropped), so a step
    costs what the rows still writing cost; a cache that cannot drop rows keeps them, fed pad.
    A prompt repeated in the batch (n samples of it) is read once (``_prefill``)."""
    B = prompt_ids.shape[0]
    if B == 0 or max_new_tokens == 0:
        empty = prompt_ids.new_zeros((B, 0))
        return empty, empty
    mask = prompt_mask.clone()  # [b, P + t] grows by one column a step
    pos = positions(mask)
    cache, logits, cache_arg = _prefill(model, prompt_ids, mask, pos)
    next_pos = pos[:, -1:] + 1  # [b, 1]
    droppable = hasattr(cache, "batch_select_indices")
    live = torch.arange(B, device=prompt_ids.device)  # [b]: the batch rows in the forward pass
    finished = torch.zeros(B, dtype=torch.bool, device=prompt_ids.device)  # [b]: past their EOS
    tokens = prompt_ids.new_full((B, max_new_tokens), pad)  # [B, T]
    alive = prompt_ids.new_zeros((B, max_new_tokens))  # [B, T]
    width = 0
    for step in range(max_new_tokens):
        width = step + 1
        uniform = uniforms[live, step] if uniforms is not None else None  # [b]
        token = next_tokens(logits, temperature, top_p, uniform)  # [b]
        fresh = ~finished  # [b]: rows whose token this step is real
        token = token.masked_fill(finished, pad)
        tokens[live, step], alive[live, step] = token, fresh.long()
        if eos is not None:
            finished = finished | (token == eos)
        if bool(finished.all()) or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, fresh.long()[:, None]], dim=1)  # the token fed next
        if droppable and bool(finished.any()):
            stay = (~finished).nonzero().squeeze(1)  # [b']
            cache.batch_select_indices(stay)
            live, token, mask, next_pos = live[stay], token[stay], mask[stay], next_pos[stay]
            finished = finished[stay]
        out = model(
            input_ids=token[:, None],
            attention_mask=mask,
            position_ids=next_pos,
            use_cache=True,
            **{cache_arg: cache},
        )
        cache, logits, next_pos = getattr(out, cache_arg), out.logits[:, -1, :], next_pos + 1
    return tokens[:, :width], alive[:, :width]


def _prefill(
    model: Any,
    prompt_ids: torch.Tensor,  # [B, P]
    mask: torch.Tensor,  # [B, P]
    pos: torch.Tensor,  # [B, P]
) -> tuple[Any, torch.Tensor, str]:
    """The forward pass over the prompts: the KV cache, the next-token logits ``[B, V]`` and
    the name the model takes its cache by. Each distinct prompt row is run once and its cache
    rows and logits repeated for its copies (the n samples of a prompt share their prompt);
    a cache that cannot select rows gets every row run."""
    keep = {"logits_to_keep": 1} if accepts_logits_to_keep(model) else {}  # no [B, P, V] logits
    cache_arg = cache_argument(model)
    rows = torch.cat([prompt_ids, mask], dim=1)  # [B, 2P]: a row is its tokens and its padding
    distinct, copies = torch.unique(rows, dim=0, return_inverse=True)  # [U, 2P], [B]
    if len(distinct) < len(rows):
        first = torch.full((len(distinct),), len(rows), dtype=torch.long, device=rows.device)
        first = first.scatter_reduce(0, copies, torch.arange(len(rows), device=rows.device), "amin")
        out = model(
            input_ids=prompt_ids[first],
            attention_mask=mask[first],
            position_ids=pos[first],
            use_cache=True,
            **keep,
        )
        cache = getattr(out, cache_arg)
        if hasattr(cache, "batch_select_indices"):
            cache.batch_select_indices(copies)  # [U] -> [B] rows
            return cache, out.logits[:, -1, :][copies], cache_arg
    out = model(input_ids=prompt_ids, attention_mask=mask, position_ids=pos, use_cache=True, **keep)
    return getattr(out, cache_arg), out.logits[:, -1, :], cache_arg


@dataclass(frozen=True)
class SampleRequest:
    """One draw: ``n`` responses to each of ``prompts`` (row ``i * n + j`` is the j-th response
    to prompt i), each at most ``max_new_tokens`` long and stopping at its EOS (``eos_token_id``,
    default the tokenizer's); ``temperature == 0`` decodes greedily, else nucleus sampling with
    ``top_p``; draws use ``generator``, so a seeded one makes the draw deterministic;
    ``batch_size`` bounds the rows of one forward pass where a backend batches by itself.

    ``share``, ``(first, stop)``: draw for the prompts ``prompts[first:stop]`` only, the tokens
    the whole request would draw for them (the generator advanced as by the whole request); a
    run spread over several workers draws a round in shares (``methods.distributed``)."""

    prompts: list[str]
    n: int
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    generator: torch.Generator | None = None
    batch_size: int | None = None
    eos_token_id: int | None = None
    share: tuple[int, int] | None = None

    @property
    def rows(self) -> list[str]:
        """Each prompt repeated ``n`` times, in row order."""
        return [p for p in self.prompts for _ in range(self.n)]


def sample(
    model: Any, tokenizer: Any, request: SampleRequest, device: torch.device | str
) -> Samples:
    """Draw what ``request`` asks for from ``model``, batched (``request.batch_size`` rows at a
    time) and KV-cached. The model is put in eval mode for the draw and its mode restored after.
    """
    r = request
    eos = tokenizer.eos_token_id if r.eos_token_id is None else r.eos_token_id
    pad = pad_id(tokenizer)
    ids, mask = encode_prompts(tokenizer, r.prompts, device)  # [P, L]: each prompt once
    prompt_ids, prompt_mask = ids.repeat_interleave(r.n, dim=0), mask.repeat_interleave(r.n, dim=0)
    uniforms = row_uniforms(len(prompt_ids), r.max_new_tokens, r.temperature, r.generator)
    rep_prompts = r.rows
    if r.share is not None:  # the share's rows, padded as the whole request pads them
        rows = slice(r.share[0] * r.n, r.share[1] * r.n)
        prompt_ids, prompt_mask = prompt_ids[rows], prompt_mask[rows]
        rep_prompts = rep_prompts[rows]
        uniforms = uniforms[rows] if uniforms is not None else None
    step = r.batch_size or max(len(rep_prompts), 1)
    parts = range(0, len(rep_prompts), step)
    was_training = model.training
    model.eval()
    try:
        with _sampling():
            chunks = [
                _generate(
                    model,
                    prompt_ids[i : i + step],
                    prompt_mask[i : i + step],
                    r.max_new_tokens,
                    r.temperature,
                    r.top_p,
                    uniforms[i : i + step].to(device) if uniforms is not None else None,
                    eos,
                    pad,
                )
                for i in parts
            ]
    finally:
        model.train(was_training)
    response_ids = response_mask = prompt_ids.new_zeros((0, 0))  # no row to draw for
    if chunks:
        response_ids = _cat_right_padded([c[0] for c in chunks], pad)
        response_mask = _cat_right_padded([c[1] for c in chunks], 0)
    responses = _decode(tokenizer, response_ids, response_mask)
    return Samples(prompt_ids, prompt_mask, response_ids, response_mask, rep_prompts, responses)


def concat(parts: list[Samples], pad: int, device: torch.device | str) -> Samples:
    """Rows of several ``Samples`` in one, re-padded to the shared layout (prompts left-padded
    to the widest prompt, responses right-padded to the longest response); none: an empty one
    on ``device``."""
    if not parts:
        empty = torch.zeros((0, 0), dtype=torch.long, device=device)
        return Samples(empty, empty, empty, empty, [], [])
    P = max(s.prompt_len for s in parts)

    def left(x: torch.Tensor, value: int) -> torch.Tensor:
        return F.pad(x, (P - x.shape[1], 0), value=value)

    return Samples(
        prompt_ids=torch.cat([left(s.prompt_ids, pad) for s in parts]),  # [N, P]
        prompt_mask=torch.cat([left(s.prompt_mask, 0) for s in parts]),  # [N, P]
        response_ids=_cat_right_padded([s.response_ids for s in parts], pad),  # [N, T]
        response_mask=_cat_right_padded([s.response_mask for s in parts], 0),  # [N, T]
        prompts=[p for s in parts for p in s.prompts],
        responses=[r for s in parts for r in s.responses],
    )


def _cat_right_padded(rows: list[torch.Tensor], value: int) -> torch.Tensor:
    """Row blocks ``[b_i, T_i]`` stacked ``[sum b_i, max T_i]``, each padded on the right."""
    width = max(t.shape[1] for t in rows)
    return torch.cat([F.pad(t, (0, width - t.shape[1]), value=value) for t in rows])


def accepts_logits_to_keep(model: Any) -> bool:
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def cache_argument(model: Any) -> str:
    """The name under which ``model`` takes and returns its KV cache: ``cache`` (transformers
    5.25 on; ``past_key_values`` is deprecated there, to be removed in 5.40), else
    ``past_key_values`` (earlier releases, and remote code written for them)."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"

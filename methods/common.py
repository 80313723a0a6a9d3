"""Shared building blocks of every method: sampling, token log-probs, SFT loss, reward scoring.

Layout used everywhere (``Samples``): prompts LEFT-padded ``[N, P]``, responses RIGHT-padded
``[N, T]``; ``response_mask`` is 1 on real response tokens (the EOS token included when one was
generated) and 0 after. Generated samples and text pairs packed from a dataset share this layout, so
one log-prob function serves both.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from methods.base import Costs, DivergenceError

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
    return _pad([list(x) for x in ids], pad_id(tokenizer), device, left=True)


def _pad(
    rows: list[list[int]], pad: int, device: torch.device | str, left: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows as ids and mask ``[N, max len]``, padded on the left or the right."""
    width = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        cols = slice(width - len(r), width) if left else slice(0, len(r))
        ids[i, cols] = torch.tensor(r, dtype=torch.long)
        mask[i, cols] = 1
    return ids.to(device), mask.to(device)


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
    response_ids, response_mask = _pad(rows, pad_id(tokenizer), device, left=False)
    return Samples(prompt_ids, prompt_mask, response_ids, response_mask, prompts, responses)


# --------------------------------------------------------------------------- sampling


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
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> torch.Tensor:
    """One token per row from ``logits [B, V]``: argmax when ``temperature == 0``, else a draw
    from the temperature-scaled, top-p-filtered distribution with ``generator``."""
    if not torch.isfinite(logits).all():
        raise FloatingPointError("the policy's logits are NaN or infinite: the model diverged")
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = top_p_filter(logits.float() / temperature, top_p).softmax(dim=-1)  # [B, V]
    # inverse-CDF draw: one uniform per row (exact; 25% faster than multinomial per round)
    gen_device = generator.device if generator is not None else probs.device
    cdf = probs.to(gen_device).cumsum(dim=-1)  # [B, V]
    u = torch.rand(cdf.shape[0], 1, generator=generator, device=gen_device) * cdf[:, -1:]  # [B, 1]
    drawn = torch.searchsorted(cdf, u, right=True).clamp(max=cdf.shape[-1] - 1)  # [B, 1]
    return drawn.squeeze(-1).to(logits.device)


@torch.no_grad()
def _generate(
    model: Any,
    prompt_ids: torch.Tensor,  # [B, P]
    prompt_mask: torch.Tensor,  # [B, P]
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    generator: torch.Generator | None,
    eos: int | None,
    pad: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """KV-cached decoding loop: response ids and mask ``[B, T]`` with T <= max_new_tokens."""
    B = prompt_ids.shape[0]
    if B == 0 or max_new_tokens == 0:
        empty = prompt_ids.new_zeros((B, 0))
        return empty, empty
    mask = prompt_mask.clone()  # [B, P + t] grows by one column a step
    pos = positions(mask)
    keep = {"logits_to_keep": 1} if _accepts_logits_to_keep(model) else {}  # no [B, P, V] logits
    out = model(input_ids=prompt_ids, attention_mask=mask, position_ids=pos, use_cache=True, **keep)
    cache, logits = out.past_key_values, out.logits[:, -1, :]
    next_pos = pos[:, -1:] + 1  # [B, 1]
    done = torch.zeros(B, dtype=torch.bool, device=prompt_ids.device)
    tokens, alive = [], []
    for step in range(max_new_tokens):
        token = next_tokens(logits, temperature, top_p, generator)  # [B]
        token = token.masked_fill(done, pad)
        tokens.append(token)
        alive.append(~done)
        if eos is not None:
            done = done | (token == eos)
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, alive[-1].long()[:, None]], dim=1)  # the token fed next
        out = model(
            input_ids=token[:, None],
            attention_mask=mask,
            position_ids=next_pos,
            past_key_values=cache,
            use_cache=True,
        )
        cache, logits, next_pos = out.past_key_values, out.logits[:, -1, :], next_pos + 1
    return torch.stack(tokens, dim=1), torch.stack(alive, dim=1).long()


def sample(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    n: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    generator: torch.Generator | None,
    device: torch.device | str,
    batch_size: int | None = None,
    eos_token_id: int | None = None,
) -> Samples:
    """Draw ``n`` responses per prompt; row ``i * n + j`` is the j-th response to prompt i.

    Batched (``batch_size`` rows at a time), KV-cached, each row stopping at its EOS
    (``eos_token_id``, default the tokenizer's). ``temperature == 0`` decodes greedily. Draws use
    ``generator``, so a seeded generator (best on ``device``) makes the run deterministic. The
    model is put in eval mode for the draw and its mode restored after.
    """
    eos = tokenizer.eos_token_id if eos_token_id is None else eos_token_id
    pad = pad_id(tokenizer)
    rep_prompts = [p for p in prompts for _ in range(n)]
    prompt_ids, prompt_mask = encode_prompts(tokenizer, rep_prompts, device)
    step = batch_size or max(len(rep_prompts), 1)
    was_training = model.training
    model.eval()
    try:
        chunks = [
            _generate(model, ids, mask, max_new_tokens, temperature, top_p, generator, eos, pad)
            for ids, mask in zip(prompt_ids.split(step), prompt_mask.split(step), strict=True)
        ]
    finally:
        model.train(was_training)
    width = max((c[0].shape[1] for c in chunks), default=0)
    response_ids = torch.cat([F.pad(c[0], (0, width - c[0].shape[1]), value=pad) for c in chunks])
    response_mask = torch.cat([F.pad(c[1], (0, width - c[1].shape[1]), value=0) for c in chunks])
    responses = _decode(tokenizer, response_ids, response_mask)
    return Samples(prompt_ids, prompt_mask, response_ids, response_mask, rep_prompts, responses)


# --------------------------------------------------------------------------- log-probs


def _accepts_logits_to_keep(model: Any) -> bool:
    return "logits_to_keep" in inspect.signature(model.forward).parameters


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
    if _accepts_logits_to_keep(model):
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
    """A seeded shuffle of ``range(n)`` cut into CPU index tensors ``[<= size]``; none if n is 0."""
    return list(torch.randperm(n, generator=generator).split(size)) if n else []


def count_samples(costs: Costs, prompts: list[str], samples: Samples) -> None:
    """Charge a round's sampling to ``costs``: prompts, samples, generated tokens."""
    costs.prompts += len(prompts)
    costs.samples += len(samples)
    costs.generated_tokens += int(samples.response_mask.sum())


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


# --------------------------------------------------------------------------- reward


def _ensure_pad(reward_model: Any, reward_tokenizer: Any) -> None:
    # sequence classifiers pool at the last non-pad token only when the config knows the pad id
    if reward_tokenizer.pad_token_id is None:
        reward_tokenizer.pad_token = reward_tokenizer.eos_token
    if getattr(reward_model.config, "pad_token_id", None) is None:
        reward_model.config.pad_token_id = reward_tokenizer.pad_token_id


@torch.no_grad()
def score_text(
    reward_model: Any,
    reward_tokenizer: Any,
    prompts: list[str],
    responses: list[str],
    device: torch.device | str,
    batch_size: int = 32,
    max_length: int | None = None,
) -> torch.Tensor:
    """Reward ``[N]`` (float32, CPU) of each ``prompt + response`` text under a sequence-
    classification RM, re-tokenised with the RM's own tokenizer (right padding; the score is the
    one at the last non-pad token)."""
    _ensure_pad(reward_model, reward_tokenizer)
    texts = [p + r for p, r in zip(prompts, responses, strict=True)]
    max_length = max_length or context_length(reward_model, reward_tokenizer)
    side, reward_tokenizer.truncation_side = reward_tokenizer.truncation_side, "left"
    scores = []
    for i in range(0, len(texts), batch_size):
        enc = reward_tokenizer(
            texts[i : i + batch_size],
            padding=True,
            padding_side="right",
            truncation=max_length is not None,  # from the left: the response end is kept
            max_length=max_length,
            return_tensors="pt",
        ).to(device)
        logits = reward_model(
            input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
        ).logits
        if logits.shape[-1] != 1:
            raise ValueError(f"a reward model has one output, this one has {logits.shape[-1]}")
        scores.append(logits[:, 0].float().cpu())
    reward_tokenizer.truncation_side = side
    return torch.cat(scores) if scores else torch.zeros(0)


def context_length(model: Any, tokenizer: Any) -> int | None:
    """The longest input ``model`` takes: the smaller of its position table and the tokenizer's
    ``model_max_length`` (None when neither says)."""
    limits = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    known = [int(x) for x in limits if isinstance(x, int) and 0 < x < 1_000_000]
    return min(known) if known else None


class RewardModel:
    """A frozen sequence-classification RM scoring text; each scored response is counted in
    ``costs.reward_calls``. Satisfies ``methods.base.RewardFn``.

    ``prompt_map`` takes a prompt as the policy sees it (e.g. rendered with its chat template)
    back to the HH text the RM was trained on; a prompt not in it is scored as given."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        device: torch.device | str,
        costs: Costs | None = None,
        batch_size: int = 32,
        prompt_map: Mapping[str, str] | None = None,
    ) -> None:
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.costs = costs if costs is not None else Costs()
        self.batch_size = batch_size
        self.prompt_map: Mapping[str, str] = prompt_map if prompt_map is not None else {}
        model.eval()
        for param in model.parameters():
            param.requires_grad_(False)
        _ensure_pad(model, tokenizer)

    def __call__(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        self.costs.reward_calls += len(responses)
        texts = [self.prompt_map.get(p, p) for p in prompts]
        return score_text(
            self.model, self.tokenizer, texts, responses, self.device, self.batch_size
        )

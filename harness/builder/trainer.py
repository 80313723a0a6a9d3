"""Training of the tiny world's tokenizer, base policy and Bradley–Terry reward models."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
)

from harness.world.config import WorldConfig
from methods.common import adamw

PAD, EOS = "<pad>", "</s>"
SFT_EPOCHS = 5
SFT_BATCH = 32
SFT_LR = 3e-3
RM_EPOCHS = 2
RM_BATCH = 16  # pairs
RM_LR = 1e-3
MAX_LEN = 160


def train_tokenizer(corpus: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``corpus`` (decoding restores spaces and newlines)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, pad_token=PAD, padding_side="right"
    )


def llama_config(cfg: WorldConfig, tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.hidden_size * 8 // 3,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )


def _batches(
    ids: list[list[int]],
    batch: int,
    rng: random.Random,
    pad: int,
    partner: list[list[int]] | None = None,
    key: list[int] | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Length-bucketed, shuffled batches: (input_ids [B, T], attention_mask [B, T]), right-padded.

    With ``partner`` (e.g. rejected beside chosen), row i's partner follows the batch's own rows:
    ``[B + B, T]``. ``key`` is the length to bucket by (default: the row's own)."""
    lengths = key or [len(x) for x in ids]
    order = sorted(range(len(ids)), key=lambda i: (lengths[i], rng.random()))
    chunks = [order[i : i + batch] for i in range(0, len(order), batch)]
    rng.shuffle(chunks)
    for chunk in chunks:
        rows = [ids[i] for i in chunk] + ([partner[i] for i in chunk] if partner else [])
        width = max(len(r) for r in rows)
        x = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for row, tokens in enumerate(rows):
            x[row, : len(tokens)] = torch.tensor(tokens)
            mask[row, : len(tokens)] = 1
        yield x, mask


def _schedule(opt: torch.optim.Optimizer, total: int, warmup: int) -> Any:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def train_policy(
    cfg: WorldConfig,
    tokenizer: PreTrainedTokenizerFast,
    corpus: list[str],
    log: Callable[[str], None],
) -> LlamaForCausalLM:
    """The base policy: a small Llama trained with next-token loss on the SFT corpus."""
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(llama_config(cfg, tokenizer))
    eos = tokenizer.eos_token_id
    ids = [[*tokenizer(t)["input_ids"][: MAX_LEN - 1], eos] for t in corpus]
    steps = SFT_EPOCHS * math.ceil(len(ids) / SFT_BATCH)
    opt = adamw(model.parameters(), lr=SFT_LR, weight_decay=0.0)
    sched = _schedule(opt, steps, warmup=50)
    rng = random.Random(cfg.seed)
    model.train()
    step = 0
    for epoch in range(SFT_EPOCHS):
        total = 0.0
        for x, mask in _batches(ids, SFT_BATCH, rng, tokenizer.pad_token_id):
            labels = x.masked_fill(mask == 0, -100)
            loss = model(input_ids=x, attention_mask=mask, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += loss.item()
            step += 1
        log(f"policy: epoch {epoch + 1}/{SFT_EPOCHS}, mean loss {total / (steps / SFT_EPOCHS):.3f}")
    model.eval()
    return model


def bradley_terry_epoch(
    rm: Any,
    tokenizer: PreTrainedTokenizerFast,
    pairs: list[dict[str, Any]],
    batch_size: int,
    opt: torch.optim.Optimizer,
    rng: random.Random,
    on_step: Callable[[], None] = lambda: None,
) -> int:
    """One pass of ``-log sigmoid(r(x, y_chosen) - r(x, y_rejected))`` over ``pairs``.

    Texts are tokenised once; batches hold pairs of similar length (less padding), in a shuffled
    order; chosen and rejected go through one forward pass. Returns the optimizer steps taken.
    """
    n = len(pairs)
    texts = [p["prompt"] + p["chosen"] for p in pairs] + [
        p["prompt"] + p["rejected"] for p in pairs
    ]
    ids = tokenizer(texts, truncation=True, max_length=MAX_LEN)["input_ids"]
    longest = [max(len(ids[i]), len(ids[n + i])) for i in range(n)]
    pad = tokenizer.pad_token_id
    rm.train()
    steps = 0
    for x, mask in _batches(ids[:n], batch_size, rng, pad, partner=ids[n:], key=longest):
        b = x.shape[0] // 2
        rewards = rm(input_ids=x, attention_mask=mask).logits[:, 0]  # [2b]: chosen, rejected
        loss = -F.logsigmoid(rewards[:b] - rewards[b:]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(rm.parameters(), 1.0)
        opt.step()
        steps += 1
        on_step()
    return steps


def _pair_batch(
    tokenizer: PreTrainedTokenizerFast, pairs: list[dict[str, Any]]
) -> dict[str, torch.Tensor]:
    """Chosen then rejected texts of ``pairs`` in one right-padded batch [2B, T]."""
    texts = [p["prompt"] + p["chosen"] for p in pairs] + [
        p["prompt"] + p["rejected"] for p in pairs
    ]
    return dict(
        tokenizer(texts, padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
    )


def pairwise_accuracy(
    rm: LlamaForSequenceClassification,
    tokenizer: PreTrainedTokenizerFast,
    pairs: list[dict[str, Any]],
) -> float:
    rm.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(pairs), 64):
            chunk = pairs[i : i + 64]
            rewards = rm(**_pair_batch(tokenizer, chunk)).logits[:, 0]  # [2B]
            correct += int((rewards[: len(chunk)] > rewards[len(chunk) :]).sum())
    return correct / len(pairs)


def train_reward_model(
    cfg: WorldConfig,
    tokenizer: PreTrainedTokenizerFast,
    policy: LlamaForCausalLM,
    train_pairs: list[dict[str, Any]],
    test_pairs: list[dict[str, Any]],
    seed_offset: int,
) -> tuple[LlamaForSequenceClassification, float]:
    """A Bradley–Terry reward model initialised from the policy's body (as in InstructGPT).

    Loss: ``-log sigmoid(r(x, y_chosen) - r(x, y_rejected))``. Returns the model and its
    pairwise accuracy on ``test_pairs`` (ordered by the gold reward, no label noise).
    """
    torch.manual_seed(cfg.seed * 1000 + seed_offset)
    config = llama_config(cfg, tokenizer)
    config.num_labels = 1
    rm = LlamaForSequenceClassification(config)
    rm.model.load_state_dict(policy.model.state_dict())
    opt = adamw(rm.parameters(), lr=RM_LR, weight_decay=0.0)
    steps = RM_EPOCHS * math.ceil(len(train_pairs) / RM_BATCH)
    sched = _schedule(opt, steps, warmup=20)
    rng = random.Random(cfg.seed * 1000 + seed_offset)
    for _ in range(RM_EPOCHS):
        bradley_terry_epoch(rm, tokenizer, train_pairs, RM_BATCH, opt, rng, on_step=sched.step)
    return rm, pairwise_accuracy(rm, tokenizer, test_pairs)


def save(model: Any, tokenizer: PreTrainedTokenizerFast, path: Path) -> None:
    from transformers.utils import logging

    logging.disable_progress_bar()  # no "Writing model shards" bar per model
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)

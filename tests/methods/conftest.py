"""Tiny random models and word-level tokenizers for the method tests (built in milliseconds).

Use the fixtures (``tokenizer``, ``policy``, ``make_policy``, ``rm_tokenizer``,
``make_reward_model``) rather than importing this module, so the tests run under any pytest
import mode."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
)

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
WORDS = [
    word
    for line in (
        "human assistant how do i make tea coffee bread a the to and of in is it you can",
        "please first then next finally water boil cup sugar milk flour yeast bake oven",
        "hot cold good bad sorry no help step one two three four five six with for on",
        "at this that what why when",
    )
    for word in line.split(" ")
]


def build_tokenizer(words: list[str] = WORDS, reverse: bool = False) -> Any:
    """A word-level tokenizer ``<pad>, <s>, </s>, <unk>, words...`` that prepends ``<s>``.

    ``reverse`` numbers the words backwards (and puts the specials last), giving a tokenizer
    whose ids differ from the default one on the same text."""
    vocab_words = list(reversed(words)) if reverse else list(words)
    order = vocab_words + SPECIALS if reverse else SPECIALS + vocab_words
    vocab = {tok: i for i, tok in enumerate(order)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", vocab["<s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )


def tiny_config(tokenizer: Any, attn: str = "sdpa", num_labels: int | None = None) -> LlamaConfig:
    kwargs: dict[str, Any] = {"attn_implementation": attn}
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
        **kwargs,
    )


def build_policy(tokenizer: Any, seed: int = 0, attn: str = "sdpa") -> LlamaForCausalLM:
    """A randomly initialised 2-layer Llama (hidden 32) over ``tokenizer``'s vocabulary."""
    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_config(tokenizer, attn)).eval()


def build_gpt2(tokenizer: Any, seed: int = 0) -> GPT2LMHeadModel:
    """A tiny random GPT-2: absolute position embeddings, so unlike Llama's RoPE (which only sees
    relative positions) it gives wrong log-probs when left padding shifts the position ids."""
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=256,
        n_embd=32,
        n_layer=2,
        n_head=4,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return GPT2LMHeadModel(config).eval()


def build_reward_model(tokenizer: Any, seed: int = 1) -> LlamaForSequenceClassification:
    """A randomly initialised 2-layer Llama sequence classifier with one output."""
    torch.manual_seed(seed)
    config = tiny_config(tokenizer, num_labels=1)
    config.pad_token_id = None  # score_text must set it
    return LlamaForSequenceClassification(config).eval()


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny matmuls run several times faster on one thread than on two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return build_tokenizer()


@pytest.fixture(scope="module")
def policy(tokenizer: Any) -> LlamaForCausalLM:
    return build_policy(tokenizer)


@pytest.fixture
def make_policy() -> Callable[..., LlamaForCausalLM]:
    """``make_policy(tokenizer, seed=0, attn="sdpa")``: a fresh tiny policy."""
    return build_policy


@pytest.fixture
def make_model(tokenizer: Any) -> Callable[[str], Any]:
    """``make_model(kind)`` for kind in ``llama-eager``, ``llama-sdpa``, ``gpt2``."""

    def make(kind: str) -> Any:
        if kind == "gpt2":
            return build_gpt2(tokenizer)
        return build_policy(tokenizer, attn=kind.removeprefix("llama-"))

    return make


@pytest.fixture
def rm_tokenizer() -> Any:
    """A tokenizer whose ids differ from ``tokenizer``'s on the same text (as a real RM's would)."""
    return build_tokenizer(reverse=True)


@pytest.fixture
def make_reward_model() -> Callable[..., LlamaForSequenceClassification]:
    """``make_reward_model(rm_tokenizer, seed=1)``: a fresh tiny RM, no pad id in its config."""
    return build_reward_model

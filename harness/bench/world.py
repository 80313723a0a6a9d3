"""The tiny world's models and data as both sides of ``harness bench`` use them: loaded once,
copied fresh for every run, cut to what a row needs."""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from harness.bench.config import SEED, BenchConfig, BenchInputError
from harness.bench.core import Run
from harness.builder.build import ensure_world
from harness.load.data import load_pairs_file, load_prompts_file
from harness.run.execute import open_backend
from harness.suite.generation import BackendName, Generation
from harness.suite.schema import ModelRef
from harness.world.config import WorldConfig
from methods.base import PreferencePair
from methods.generation import Backend

MIN_HEAD_DIM = 32  # vLLM's CPU attention rejects narrower heads (the tiny world's are 16 wide)


class Backends:
    """The generation backends of the ``generation.<backend>`` rows, each started once on the
    bench's generation model (outside every timer: a vLLM engine takes ~20 s) and closed by
    ``close``; ``started[name]`` is the seconds its start took."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.started: dict[str, float] = {}
        self._open: dict[str, Backend] = {}
        self._stack = ExitStack()

    def get(self, name: BackendName) -> Backend:
        if name not in self._open:
            folder = Path(self._stack.enter_context(tempfile.TemporaryDirectory()))
            self.model.save_pretrained(folder)
            self.tokenizer.save_pretrained(folder)
            ref = ModelRef(path=str(folder), dtype="float32")
            start = time.perf_counter()
            backend = open_backend(Generation(backend=name), ref, torch.device("cpu"))
            self._open[name] = self._stack.enter_context(backend)
            self.started[name] = time.perf_counter() - start
        return self._open[name]

    def close(self) -> None:
        self._stack.close()
        self._open.clear()


def generation_policy(policy: Any) -> Any:
    """The model every ``generation.<backend>`` row samples: ``policy`` itself when its attention
    heads are at least ``MIN_HEAD_DIM`` wide, else its architecture with fewer, wider heads (same
    width, layers, vocabulary and context; random weights, seeded): speed depends on the shapes,
    not on the weights, and every backend then runs on the very same model."""
    config = copy.deepcopy(policy.config)
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    if head_dim >= MIN_HEAD_DIM:
        return policy
    heads = max(1, config.hidden_size // MIN_HEAD_DIM)
    config.num_attention_heads = config.num_key_value_heads = heads
    config.head_dim = config.hidden_size // heads
    torch.manual_seed(SEED)
    return AutoModelForCausalLM.from_config(config).eval()


@dataclass
class BenchWorld:
    """The tiny world's models and data, loaded once; every run takes fresh copies."""

    path: Path
    tokenizer: Any
    policy: Any  # the base policy, never trained itself
    rm_tokenizer: Any
    rm_base: Any  # the proxy RM, copied and trained by the reward-model row
    scorer: Any  # the proxy RM, frozen, scoring GRPO completions on both sides
    pairs: list[PreferencePair]
    prompts: list[str]
    generation_policy: Any = None  # what the generation.<backend> rows sample (head_dim >= 32)
    backends: Backends | None = None


def load_world() -> BenchWorld:
    """The default tiny world (built on first use under ``$HARNESS_CACHE``)."""
    path = ensure_world(WorldConfig(), log=lambda line: None)
    pairs, _ = load_pairs_file(path / "data/preferences.jsonl")
    prompts, _ = load_prompts_file(path / "data/train_prompts.jsonl", "prompt")
    tokenizer = AutoTokenizer.from_pretrained(path / "policy")
    policy = AutoModelForCausalLM.from_pretrained(path / "policy").eval()
    sampled = generation_policy(policy)
    return BenchWorld(
        path=path,
        tokenizer=tokenizer,
        policy=policy,
        rm_tokenizer=AutoTokenizer.from_pretrained(path / "proxy_rm"),
        rm_base=AutoModelForSequenceClassification.from_pretrained(path / "proxy_rm"),
        scorer=AutoModelForSequenceClassification.from_pretrained(path / "proxy_rm"),
        pairs=pairs,
        prompts=prompts,
        generation_policy=sampled,
        backends=Backends(sampled, tokenizer),
    )


def take(items: list[Any], n: int, what: str) -> list[Any]:
    """The first ``n`` items; ``BenchInputError`` when there are fewer."""
    if len(items) < n:
        raise BenchInputError(
            f"the bench needs {n:,} {what} (steps x batch size), the world has {len(items):,}"
        )
    return items[:n]


def rm_pairs(world: BenchWorld, n: int) -> list[dict[str, str]]:
    """The reward-model row's pairs as text, each response ending in EOS, as ``RewardTrainer``
    has them (so both sides tokenise the very same strings)."""
    eos = world.rm_tokenizer.eos_token
    return [
        {"prompt": p.prompt, "chosen": p.chosen + eos, "rejected": p.rejected + eos}
        for p in take(world.pairs, n, "preference pairs")
    ]


Runner = Callable[[BenchWorld, BenchConfig], Run]
"""One side of one row: a timed run on the world with the bench's settings."""

"""The tiny world's models and data as both sides of ``harness bench`` use them: loaded once,
copied fresh for every run, cut to what a row needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from harness.bench.core import BenchConfig, BenchInputError, Run
from harness.data import load_pairs_file, load_prompts_file
from harness.world.build import ensure_world
from harness.world.config import WorldConfig
from methods.base import PreferencePair


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


def load_world() -> BenchWorld:
    """The default tiny world (built on first use under ``$HARNESS_CACHE``)."""
    path = ensure_world(WorldConfig(), log=lambda line: None)
    pairs, _ = load_pairs_file(path / "data/preferences.jsonl")
    prompts, _ = load_prompts_file(path / "data/train_prompts.jsonl", "prompt")
    return BenchWorld(
        path=path,
        tokenizer=AutoTokenizer.from_pretrained(path / "policy"),
        policy=AutoModelForCausalLM.from_pretrained(path / "policy").eval(),
        rm_tokenizer=AutoTokenizer.from_pretrained(path / "proxy_rm"),
        rm_base=AutoModelForSequenceClassification.from_pretrained(path / "proxy_rm"),
        scorer=AutoModelForSequenceClassification.from_pretrained(path / "proxy_rm"),
        pairs=pairs,
        prompts=prompts,
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

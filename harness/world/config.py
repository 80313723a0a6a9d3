"""The configuration of the embedded tiny world; its hash keys the build cache."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.world.dialogues import all_requests

WORLD_VERSION = 5  # bump when the builder changes what a config produces


# Upper bounds of the world's sizes, each a few times its default (the default world builds in
# about 3.5 minutes on 2 cores): the largest world is still a small model that builds on a laptop.
# A value beyond them is a typo or an attack. ``harness.suite.bounds`` lists them with the rest.
MAX_WORLD_SEED = 2**32 - 1
MAX_SFT_DIALOGUES = 64_000
MAX_WORLD_PROMPTS = 8192  # train or eval prompts (together at most the world's distinct requests)
MAX_WORLD_PAIRS = 16_000  # gold-labelled pairs per reward model, and offline preference pairs
MAX_VOCAB_SIZE = 8192
MAX_HIDDEN_SIZE = 512
MAX_LAYERS = 8
MAX_HEADS = 16


class WorldConfig(BaseModel):
    """Everything that determines a built tiny world. Same config, same world, byte for byte.
    Strict like every section of a suite: ``'8'``, ``8.0`` or ``true`` is not an int, and every
    float is finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    name: Literal["tiny"] = Field("tiny", description="The only embedded world.")
    seed: int = Field(0, ge=0, le=MAX_WORLD_SEED, description="Seed of every random choice.")
    sft_dialogues: int = Field(
        8000, ge=100, le=MAX_SFT_DIALOGUES, description="Dialogues in the base policy's corpus."
    )
    train_prompts: int = Field(
        2048, ge=8, le=MAX_WORLD_PROMPTS, description="Prompts methods train on."
    )
    eval_prompts: int = Field(
        1024, ge=8, le=MAX_WORLD_PROMPTS, description="Held-out evaluation prompts."
    )
    preference_pairs: int = Field(
        1024,
        ge=8,
        le=MAX_WORLD_PAIRS,
        description="Offline preference pairs (DPO...): the first of the proxy RM's.",
    )
    rm_pairs: int = Field(
        1600, ge=100, le=MAX_WORLD_PAIRS, description="Gold-labelled pairs per reward model."
    )
    rm_label_noise: float = Field(0.1, ge=0, lt=0.5, description="Share of flipped RM labels.")
    vocab_size: int = Field(
        1024, ge=300, le=MAX_VOCAB_SIZE, description="BPE vocabulary of the tokenizer."
    )
    hidden_size: int = Field(
        64, ge=16, le=MAX_HIDDEN_SIZE, description="Width of the Llama models."
    )
    layers: int = Field(
        2, ge=1, le=MAX_LAYERS, description="Transformer layers of the Llama models."
    )
    heads: int = Field(
        2,
        ge=1,
        le=MAX_HEADS,
        description="Attention heads (2: heads of 32, the narrowest vLLM runs on CPU).",
    )

    @model_validator(mode="after")
    def _fits(self) -> WorldConfig:
        if self.preference_pairs > self.rm_pairs:
            raise ValueError(
                f"preference_pairs ({self.preference_pairs}) are the proxy reward model's "
                f"training pairs: at most rm_pairs ({self.rm_pairs})"
            )
        available = len(all_requests())
        if self.train_prompts + self.eval_prompts > available:
            raise ValueError(
                f"train_prompts + eval_prompts ({self.train_prompts + self.eval_prompts}) exceed "
                f"the world's {available} distinct requests"
            )
        width, rest = divmod(self.hidden_size, self.heads)
        if rest or width % 2:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must split into {self.heads} heads of an even "
                "width (rotary embeddings pair a head's dimensions)"
            )
        return self

    def key(self) -> str:
        blob = json.dumps({"v": WORLD_VERSION, **self.model_dump()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def cache_root() -> Path:
    """``$HARNESS_CACHE`` or ``$XDG_CACHE_HOME/alignment-harness`` (default ``~/.cache``)."""
    if env := os.environ.get("HARNESS_CACHE"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "alignment-harness"


def world_dir(config: WorldConfig, root: Path | None = None) -> Path:
    return (root or cache_root()) / "worlds" / f"{config.name}-{config.key()}"

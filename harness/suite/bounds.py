"""The bounds of a suite: every count and rate a suite may give, in one place, and the strict base
model and name types every section of the schema (``harness.suite.schema``) is built from."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

# Bounds defined beside what they bound, re-exported here (``__all__``) so that every bound is
# listed in one place: the tiny world's sizes (the world sits below the suite) and the methods'
# parameters (methods import nothing of the harness).
from harness.world.config import (
    MAX_HEADS,
    MAX_HIDDEN_SIZE,
    MAX_LAYERS,
    MAX_SFT_DIALOGUES,
    MAX_VOCAB_SIZE,
    MAX_WORLD_PAIRS,
    MAX_WORLD_PROMPTS,
    MAX_WORLD_SEED,
)
from methods.base import MAX_BATCH as MAX_METHOD_BATCH
from methods.base import MAX_EPOCHS
from methods.base import MAX_SAMPLES as MAX_METHOD_SAMPLES
from methods.params import (
    MAX_CLIP,
    MAX_COEF,
    MAX_GRAD_NORM,
    MAX_HORIZON,
    MAX_KL,
    MAX_LENGTH_PENALTY,
    MAX_LR,
)

_SLUG = re.compile(r"[a-z0-9_-]{1,64}")

# --- bounds: every count and rate a suite may give, in one place ---------------------------------
# A value beyond these is a typo or an attack, never a plan: each would run for days or exhaust
# memory. Every float of the suite is finite (``allow_inf_nan=False`` below).
MAX_ROUNDS = 10_000
MAX_PROMPTS = 1_000_000  # prompts per round, eval prompts, records read from a source
MAX_SAMPLES = 1024  # samples per prompt, training or evaluation
MAX_TOKENS = 32_768  # new tokens per response
MAX_PROMPT_TOKENS = 1_048_576
MAX_SEED = 2**32 - 1
MAX_SEEDS = 1000
MAX_VARIANTS = 1000
MAX_BOOTSTRAP = 100_000
MAX_RETRIES = 100
MAX_BATCH = 4096
TEMPERATURE = (0.01, 100.0)  # below, logits / T overflows; above, sampling is uniform noise
MIN_CPUS, MAX_CPUS = 0.1, 4096.0  # per run
MIN_GPUS = 0.01  # per run, when any: a smaller share packs thousands of runs on one card
MAX_WORKERS = 1024  # workers (processes, one device each when on GPUs) of one run
MAX_JUDGES = 100  # judges named in models.judges, and judges in eval.judges

# The suite file itself (``harness.suite.loader``): a suite is a few hundred values. An alias bomb
# (a billion laughs from a few lines of anchors) and deep nesting are refused before anything is
# built from them.
MAX_SUITE_BYTES = 1_000_000
MAX_YAML_VALUES = 100_000
MAX_YAML_DEPTH = 64

# A local data file (``harness.load.data``), read through by ``harness validate`` as by a run: a
# file beyond these is refused, naming the file and the line, before it keeps anything busy.
MAX_DATA_BYTES = 2**31  # bytes read (decompressed, for a .jsonl.gz); HH-RLHF's largest is 0.2 GB
MAX_GZIP_RATIO = 100  # a .jsonl.gz decompresses to at most this many times its size (text: ~5)
MAX_DATA_LINES = MAX_PROMPTS  # lines read, blank ones included
MAX_RECORD_BYTES = 1_000_000  # a longer line is dropped unread (a tokenizer would choke)
MAX_JSON_DEPTH = 32  # nesting of a record; a deeper one is dropped as malformed


def _slug(value: str) -> str:
    if not _SLUG.fullmatch(value):
        raise PydanticCustomError(
            "slug", "should be a slug: 1 to 64 lowercase letters, digits, '_' or '-'"
        )
    return value


def _task(value: str) -> str:
    if not TASK_NAME.fullmatch(value):
        raise PydanticCustomError(
            "task", "should be an lm-eval task name: letters, digits, '_', '.' or '-'"
        )
    return value


Slug = Annotated[str, AfterValidator(_slug)]
TaskName = Annotated[str, AfterValidator(_task)]


Prompts = Annotated[int, Field(gt=0, le=MAX_PROMPTS)]
Rounds = Annotated[int, Field(gt=0, le=MAX_ROUNDS)]
Samples = Annotated[int, Field(gt=0, le=MAX_SAMPLES)]
Tokens = Annotated[int, Field(gt=0, le=MAX_TOKENS)]
PromptTokens = Annotated[int, Field(gt=0, le=MAX_PROMPT_TOKENS)]
Batch = Annotated[int, Field(gt=0, le=MAX_BATCH)]


class Strict(BaseModel):
    """Every section of a suite: unknown keys forbidden, frozen, strict types, finite floats."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


__all__ = [
    "MAX_BATCH",
    "MAX_BOOTSTRAP",
    "MAX_CLIP",
    "MAX_COEF",
    "MAX_CPUS",
    "MAX_DATA_BYTES",
    "MAX_DATA_LINES",
    "MAX_EPOCHS",
    "MAX_GRAD_NORM",
    "MAX_GZIP_RATIO",
    "MAX_HEADS",
    "MAX_HIDDEN_SIZE",
    "MAX_HORIZON",
    "MAX_JSON_DEPTH",
    "MAX_JUDGES",
    "MAX_KL",
    "MAX_LAYERS",
    "MAX_LENGTH_PENALTY",
    "MAX_LR",
    "MAX_METHOD_BATCH",
    "MAX_METHOD_SAMPLES",
    "MAX_PROMPTS",
    "MAX_PROMPT_TOKENS",
    "MAX_RECORD_BYTES",
    "MAX_RETRIES",
    "MAX_ROUNDS",
    "MAX_SAMPLES",
    "MAX_SEED",
    "MAX_SEEDS",
    "MAX_SFT_DIALOGUES",
    "MAX_SUITE_BYTES",
    "MAX_TOKENS",
    "MAX_VARIANTS",
    "MAX_VOCAB_SIZE",
    "MAX_WORKERS",
    "MAX_WORLD_PAIRS",
    "MAX_WORLD_PROMPTS",
    "MAX_WORLD_SEED",
    "MAX_YAML_DEPTH",
    "MAX_YAML_VALUES",
    "MIN_CPUS",
    "MIN_GPUS",
    "TASK_NAME",
    "TEMPERATURE",
    "Batch",
    "PromptTokens",
    "Prompts",
    "Rounds",
    "Samples",
    "Slug",
    "Strict",
    "TaskName",
    "Tokens",
]

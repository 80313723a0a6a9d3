"""The base (SFT) policy itself: the reference every method is judged against."""

from __future__ import annotations

from methods.base import Method, MethodParams


class SFTParams(MethodParams):
    """No hyperparameters: nothing is trained."""


METHOD = Method(
    name="sft",
    description="The base (SFT) policy itself, untrained: what every method is judged against.",
    params=SFTParams,
    train=None,
    needs_reference=False,
    source="",
)

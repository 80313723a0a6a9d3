"""The judges' names, decided here once: which judge is the training reward model, which is the
world's gold reward, which reward models only the embedded world has, and which judge ranks a
leaderboard when none is named.

A judge scores every evaluation sample. Three names are the harness's own: ``proxy`` (the training
reward model itself: its win-rates are what a method optimised), ``heldout`` (the world's second
reward model, trained on other pairs) and ``gold`` (the world's gold reward function, the truth no
method trains on). A suite names its other judges after its own reward models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PROXY = "proxy"
HELDOUT = "heldout"
GOLD = "gold"
WORLD_JUDGES = (HELDOUT, GOLD)  # the judges that only the embedded world has
RESERVED = (PROXY, GOLD)  # names a suite may not give its own reward models


def default_primary_judge(judges: Sequence[str]) -> str | None:
    """The judge that ranks a leaderboard when none is named: the first that is not the
    training reward model (its win-rates are what a method optimised), else the first."""
    return next((j for j in judges if j != PROXY), judges[0] if judges else None)


@dataclass(frozen=True)
class Judges:
    """The judges of a result, in the suite's order, and the one that ranks it."""

    names: tuple[str, ...]
    primary: str | None

    @classmethod
    def of(cls, names: Sequence[str], primary: str | None = None) -> Judges:
        """``names`` ranked by ``primary`` when it is one of them, else by the default rule."""
        ranked = primary if primary in names else default_primary_judge(names)
        return cls(tuple(names), ranked)

    @property
    def truth(self) -> str | None:
        """The judge closest to the truth: gold where the world has it, else the primary."""
        return GOLD if GOLD in self.names else self.primary

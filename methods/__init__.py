"""The registry of alignment methods: one explicit dict, one line per method."""

from __future__ import annotations

import difflib

from methods import best_of_n, dpo, grpo, ppo, pro, raft, rrhf, sft
from methods.base import Method

REGISTRY: dict[str, Method] = {
    m.name: m
    for m in (
        sft.METHOD,
        best_of_n.METHOD,
        ppo.METHOD,
        rrhf.METHOD,
        raft.METHOD,
        pro.METHOD,
        dpo.METHOD,
        grpo.METHOD,
    )
}


class UnknownMethodError(KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name
        self.suggestion = did_you_mean(name)

    def __str__(self) -> str:
        hint = f" Did you mean '{self.suggestion}'?" if self.suggestion else ""
        return f"unknown method '{self.name}'.{hint} Known: {', '.join(REGISTRY)}."


def did_you_mean(name: str) -> str | None:
    close = difflib.get_close_matches(name.lower(), list(REGISTRY), n=1, cutoff=0.5)
    return close[0] if close else None


def get(name: str) -> Method:
    """The method registered as ``name``; a "did you mean" error otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownMethodError(name) from None

"""The registry of alignment methods: one explicit list, one entry per method.

The registry is torch-free: an entry names its params model (``methods.params``) and the module
holding its ``train`` (and ``respond``), which is imported only when a run trains or answers with it
(``Method.train_fn``, ``Method.respond_fn``). Validating a suite or listing the methods imports no
training loop.
"""

from __future__ import annotations

import difflib

from methods import params
from methods.base import Method

BUILT_IN: tuple[Method, ...] = (
    Method(
        name="sft",
        description="The base (SFT) policy itself, untrained: what every method is judged against.",
        params=params.SFTParams,
        module=None,
        trains=False,
    ),
    Method(
        name="best_of_n",
        description="Base policy answering with the best of N samples under the training reward.",
        params=params.BestOfNParams,
        module="methods.best_of_n",
        trains=False,
        responds=True,
        source="Nakano et al. 2021 (WebGPT); Stiennon et al. 2020",
    ),
    Method(
        name="ppo",
        description="PPO-RLHF: KL-shaped RM reward, GAE, clipped policy/value losses, adaptive KL.",
        params=params.PPOParams,
        module="methods.ppo",
        needs_reference=True,
        source="Ouyang et al. 2022; TRL PPOTrainer (classic)",
    ),
    Method(
        name="rrhf",
        description="RRHF: hinge ranking loss on length-normalised log-probs plus SFT on the best "
        "candidate.",
        params=params.RRHFParams,
        module="methods.rrhf",
        source="Yuan et al. 2023; github.com/GanjinZero/RRHF",
    ),
    Method(
        name="raft",
        description="RAFT: sample K, keep the reward-best (per prompt or globally), fine-tune "
        "on them.",
        params=params.RAFTParams,
        module="methods.raft",
        source="Dong et al. 2023; LMFlow",
    ),
    Method(
        name="pro",
        description="PRO: listwise Plackett-Luce ranking of candidates plus SFT on the best.",
        params=params.PROParams,
        module="methods.pro",
        source="Song et al. 2023; AlibabaResearch/DAMO-ConvAI/PRO",
    ),
    Method(
        name="dpo",
        description="DPO: logistic loss on the policy/reference log-ratio margin of preference "
        "pairs.",
        params=params.DPOParams,
        module="methods.dpo",
        needs_reference=True,
        source="Rafailov et al. 2023",
    ),
    Method(
        name="grpo",
        description="GRPO: group-normalised advantages, clipped ratio, k3 KL to the reference.",
        params=params.GRPOParams,
        module="methods.grpo",
        needs_reference=True,
        source="Shao et al. 2024 (DeepSeekMath)",
    ),
)

REGISTRY: dict[str, Method] = {m.name: m for m in BUILT_IN}


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

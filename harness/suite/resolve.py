"""A validated suite made concrete, once: which models, data, judges and decodings it means.

``resolve(suite)`` is the only place that asks "the embedded world or the hub?": a world suite
becomes the same model references and data sources a hub suite writes by hand (pointing at the
built world's directories and files), so every other module receives plain values and loads them
one way. It is pure: a world suite resolves to the folder its world is cached in
(``harness.world.config.world_dir``); the driver builds or installs that world once, before any
run starts (``harness.builder.build.ensure_world``).

``Resolved`` is frozen and serialisable (plain values and pydantic models): the driver resolves a
suite once and every Ray task receives the value; no task validates or resolves again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.core.judges import GOLD, HELDOUT, PROXY
from harness.suite.schema import Data, DataSource, EvalDecoding, ModelRef, Suite
from harness.world.config import world_dir
from methods.base import Budget, Decoding

# The world's file of each split a world data source names.
WORLD_FILES = {
    "train": "train_prompts.jsonl",
    "eval": "eval_prompts.jsonl",
    "preferences": "preferences.jsonl",
}


@dataclass(frozen=True)
class JudgeRef:
    """How a judge scores: ``proxy`` (the training reward model itself), ``model`` (a reward
    model of its own, ``model``), or ``gold`` (the world's gold reward function)."""

    kind: Literal["proxy", "model", "gold"]
    model: ModelRef | None = None


@dataclass(frozen=True)
class LmEvalSetup:
    """The capability evaluation: lm-eval tasks (from ``include`` when they are local)."""

    tasks: list[str]
    include: Path | None
    limit: int | None
    batch_size: int
    tolerance: float
    trust_remote_code: bool = False  # as the suite says of the policy or reference, never more


@dataclass(frozen=True)
class Resolved:
    """Everything a run of the suite loads, as concrete values."""

    suite: Suite
    policy: ModelRef
    reference: ModelRef
    reward: ModelRef
    judges: dict[str, JudgeRef]  # in the order of eval.judges
    data: Data  # no `world` sources left: world splits are `file` sources
    budget: Budget  # the methods' budget, identical for every variant
    train_decoding: Decoding  # how methods sample while training (the budget's length applies)
    eval_decoding: EvalDecoding  # how the evaluation samples (max_new_tokens always set)
    lm_eval: LmEvalSetup
    world_dir: Path | None  # the built world, for a world suite

    @property
    def shares_reference(self) -> bool:
        """The reference is the base policy itself (a frozen copy of it, not a second load)."""
        return self.reference == self.policy


def resolve(suite: Suite) -> Resolved:
    """The suite's concrete models, data, judges and decodings; a world suite's world is named by
    its cache folder, which this does not build (the driver ensures it once)."""
    world = world_dir(suite.world) if suite.world is not None else None
    if world is not None:
        policy = ModelRef(path=str(world / "policy"), dtype="float32")
        reference, reward = policy, ModelRef(path=str(world / "proxy_rm"), dtype="float32")
        named = {HELDOUT: ModelRef(path=str(world / "heldout_rm"), dtype="float32")}
    else:
        assert suite.models is not None  # the schema requires one of world / models
        policy, reward = suite.models.policy, suite.models.reward
        reference = suite.models.reference or policy
        named = dict(suite.models.judges)
    judges = {name: _judge(name, named) for name in suite.eval.judges}
    lm = suite.eval.lm_eval
    return Resolved(
        suite=suite,
        policy=policy,
        reference=reference,
        reward=reward,
        judges=judges,
        data=_data(suite.data, world),
        budget=Budget(**suite.budget.model_dump()),
        train_decoding=Decoding(**suite.train.decoding.model_dump()),
        eval_decoding=suite.eval.decoding,
        lm_eval=LmEvalSetup(
            list(lm.tasks),
            world / "tasks" if world is not None else None,
            lm.limit,
            lm.batch_size,
            lm.tolerance,
            policy.trust_remote_code or reference.trust_remote_code,
        ),
        world_dir=world,
    )


def _judge(name: str, named: dict[str, ModelRef]) -> JudgeRef:
    if name == PROXY:
        return JudgeRef("proxy")
    if name == GOLD:
        return JudgeRef("gold")
    return JudgeRef("model", named[name])  # the schema checked that the name exists


def _data(data: Data, world: Path | None) -> Data:
    def source(src: DataSource | None) -> DataSource | None:
        if src is None or src.source != "world":
            return src
        assert world is not None  # the schema requires a world for world sources
        path = world / "data" / WORLD_FILES.get(src.split, f"{src.split}.jsonl")
        return src.model_copy(update={"source": "file", "path": str(path)})

    return data.model_copy(
        update={
            "train_prompts": source(data.train_prompts),
            "preferences": source(data.preferences),
            "eval_prompts": source(data.eval_prompts),
        }
    )

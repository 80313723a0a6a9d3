"""What every alignment method is made of: validated params, a train loop, and its context.

A method module (``methods/rrhf.py`` ...) holds, in this order: its ``Params`` model (defaults from
the paper or the official code, each field with a help text), its pure loss function(s) over
tensors, and ``train(ctx, params)``. The registry in ``methods/__init__.py`` lists them.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    import torch

    from methods.generation import Backend
    from methods.sampling import Samples


Candidate = Literal["policy", "chosen", "rejected", "reference"]
"""Where a ranked candidate response comes from: the policy's samples, the dataset's preferred or
dispreferred response, or a sample of the frozen reference (base) policy."""


def default_candidates() -> list[Candidate]:
    return ["policy", "reference"]


def _ranks_something(candidates: list[Candidate]) -> list[Candidate]:
    """A ranking needs two candidates per prompt: no empty list, no repeats, and not one dataset
    response alone (the sampled sources give ``samples_per_prompt`` each)."""
    if not candidates:
        raise PydanticCustomError("candidates", "at least one source: a ranking needs candidates")
    if len(set(candidates)) < len(candidates):
        raise PydanticCustomError("candidates", "each source at most once")
    if len(candidates) == 1 and candidates[0] in ("chosen", "rejected"):
        raise PydanticCustomError("candidates", "one dataset response per prompt ranks nothing")
    return candidates


CandidateList = Annotated[list[Candidate], AfterValidator(_ranks_something)]

# Upper bounds of the methods' counts (a value beyond them is a typo or an attack, never a plan)
MAX_EPOCHS = 100  # passes over one round's data
MAX_BATCH = 4096  # items per optimizer step
MAX_SAMPLES = 1024  # samples drawn per prompt


class MethodParams(BaseModel):
    """Base of every method's hyperparameters: strict (``4.0`` is not an int, ``'1e-4'`` not a
    float), finite (no ``.inf`` or ``.nan``), frozen, unknown keys rejected, like the rest of
    the suite."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class DivergenceError(RuntimeError):
    """A loss became NaN or infinite: the run stops instead of producing a garbage model."""

    def __init__(self, method: str, round_: int, step: int, loss: float) -> None:
        super().__init__(
            f"{method} diverged at round {round_}, step {step}: loss is {loss}. "
            "Lower the learning rate or check the reward scale."
        )
        self.method, self.round, self.step, self.loss = method, round_, step, loss


@dataclass
class Costs:
    """What a run spent; every method fills the same counters so budgets can be compared.

    The token counters are the compute ledger (``harness.core.ledger`` prices them in
    FLOPs); each is charged in one place, never by a method itself, and counts real tokens
    (attention-mask ones, not padding):

    - ``forward_tokens``: through a forward pass without gradients: log-probs of the policy (and
      its value head) and of the reference, and the prompts a generation prefills; charged by
      ``methods.common.metered`` (a forward hook on the policy and the reference) and, for the
      prompts, ``methods.common.charge``;
    - ``trained_tokens``: through a forward pass of the policy with gradients (each one goes
      backward too); ``methods.common.metered``;
    - ``generated_tokens``: sampled; ``methods.common.charge``;
    - ``reward_tokens``: scored by the reward model, in its own tokenization;
      ``methods.reward.RewardModel``.
    """

    forward_tokens: int = 0
    trained_tokens: int = 0
    generated_tokens: int = 0
    reward_tokens: int = 0
    samples: int = 0
    reward_calls: int = 0
    optimizer_steps: int = 0
    prompts: int = 0
    wall_seconds: float = 0.0
    peak_memory_mb: float = 0.0


@dataclass(frozen=True)
class Budget:
    """Per-run budget, identical for every method of a suite."""

    prompts_per_round: int
    rounds: int
    samples_per_prompt: int
    max_new_tokens: int


@dataclass(frozen=True)
class Decoding:
    temperature: float = 1.0
    top_p: float = 1.0


@dataclass(frozen=True)
class PreferencePair:
    """One prompt with a preferred and a dispreferred response (HH text format split)."""

    prompt: str
    chosen: str
    rejected: str


@dataclass(frozen=True)
class Progress:
    """One optimizer step as reported: its round and step (both from 0), the loss, the mean
    reward of the round's samples (None where a round has none), and the step's statistics
    (``loss``, ``grad_norm`` and the method's own: clip fraction, KL, implicit rewards...)."""

    round: int
    step: int
    loss: float
    mean_reward: float | None = None
    stats: dict[str, float] = field(default_factory=dict)


def _default_generation() -> Backend:
    from methods.generation import HF  # methods.generation imports methods.sampling, not this

    return HF


RewardFn = Callable[[list[str], list[str]], "torch.Tensor"]
"""Scores ``(prompts, responses)`` as text; returns rewards ``[N]`` (float32, CPU)."""


@dataclass
class TrainContext:
    """Everything a method's ``train`` may use; nothing else reaches it."""

    method: str
    policy: Any  # transformers PreTrainedModel on ``device``; trains what requires grad
    reference: Any  # the frozen base policy (eval mode, no grad): a copy, or with LoRA the
    # policy with its adapters off (harness.load.lora.BaseView); or None
    tokenizer: Any  # the policy's tokenizer (left padding for prompts)
    reward: RewardFn  # the training (proxy) reward model, scoring text
    prompts: list[str]  # training prompts, as the policy reads them (HH text or chat template)
    preferences: list[PreferencePair]  # offline pairs (may be empty)
    budget: Budget
    decoding: Decoding
    device: torch.device
    seed: int
    costs: Costs = field(default_factory=Costs)
    progress: Callable[[Progress], None] = lambda p: None
    # called with r after r rounds of training (0: the base policy, before the first), by the
    # shared round loop (``methods.common.checkpointed``); the harness evaluates the policy there
    checkpoint: Callable[[int], None] = lambda round_: None

    # the backend every sample is drawn through (methods.generation; default: hf)
    generation: Backend = field(default_factory=_default_generation)
    # base-corpus texts for a pre-training loss (methods.pretrain; the world's); may be empty
    pretrain: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Pool:
    """The samples an inference-time strategy chose its answers from: ``n`` per answer (row
    ``i * n + j``: the j-th candidate of answer i), the proxy reward it ranked them by, and the
    row it chose for each answer."""

    samples: Samples  # [N * n]
    proxy: torch.Tensor  # [N * n] the training reward of each candidate
    n: int
    chosen: torch.Tensor  # [N] row of samples answering each


@dataclass(frozen=True)
class Responses:
    """A policy's answers at evaluation, one per prompt, and their KL to the base policy when a
    strategy knows it in closed form (None: the evaluation estimates it by Monte Carlo). A
    strategy that picks its answers from a pool of samples hands the pool over too, so the
    evaluation can trace the curve of smaller pools from it (``harness.evaluation.bon``)."""

    samples: Samples  # [N] one answer per prompt
    kl: float | None = None
    pool: Pool | None = None


Draw = Callable[[Any, list[str], int], "Samples"]
"""``draw(model, prompts, n)``: ``n`` responses per prompt (row ``i * n + j``) with the
evaluation's decoding and seeded generator."""

Respond = Callable[[TrainContext, Any, list[str], Draw], Responses]
"""An inference-time strategy: ``respond(ctx, params, prompts, draw)``; its spend (samples,
tokens, reward calls) goes into ``ctx.costs``."""


Train = Callable[[TrainContext, Any], None]
"""A training loop: ``train(ctx, params)`` updates ``ctx.policy`` in place within ``ctx.budget``."""


@dataclass(frozen=True)
class Method:
    """A registry entry: what a suite may name, its params model (torch-free), and the module of
    its ``train`` (and ``respond``), imported only when a run needs it."""

    name: str
    description: str
    params: type[MethodParams]
    module: str | None  # "methods.dpo": holds ``train`` (and ``respond``); None: no code to run
    trains: bool = True  # False: nothing is trained (baselines)
    responds: bool = False  # True: ``module.respond`` answers; else one sample per prompt
    needs_reference: bool = False
    source: str = ""

    def train_fn(self) -> Train | None:
        """The method's ``train``; None for a method that trains nothing."""
        if not self.trains:
            return None
        return cast(Train, self._module().train)

    def respond_fn(self) -> Respond | None:
        """The method's ``respond``; None when the policy answers one sample per prompt."""
        if not self.responds:
            return None
        return cast(Respond, self._module().respond)

    def _module(self) -> Any:
        if self.module is None:
            raise ValueError(f"method {self.name!r} names no module")
        return importlib.import_module(self.module)


def prompt_rounds(prompts: list[str], budget: Budget, seed: int) -> list[list[str]]:
    """The prompts of each round: ``budget.rounds`` lists of ``prompts_per_round`` prompts, drawn
    without replacement from a seeded shuffle (reshuffled when exhausted). The same for every
    method under the same seed: the equal-budget contract. No prompts: ``ValueError`` (there is
    nothing to draw from, and waiting would never end)."""
    if not prompts:
        raise ValueError("no training prompts: the data's train_prompts yielded none")
    rng = random.Random(seed)
    order: list[str] = []
    rounds = []
    for _ in range(budget.rounds):
        while len(order) < budget.prompts_per_round:
            fresh = list(prompts)
            rng.shuffle(fresh)
            order += fresh
        rounds.append(order[: budget.prompts_per_round])
        order = order[budget.prompts_per_round :]
    return rounds

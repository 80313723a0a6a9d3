"""The compute ledger priced: a run's FLOPs estimated from its token counters and the parameter
counts of its models (``harness.evaluation.compute`` counts them). Pure arithmetic, no torch.

The counters (``methods.base.Costs``; real tokens, padding not counted) and their price::

    FLOPs = 2 * N * (forward_tokens + generated_tokens)
          + 6 * N * trained_tokens
          + 2 * N_rm * reward_tokens

- a token through a forward pass costs about 2 FLOPs per parameter (one multiply and one add per
  weight), a trained token about 6 (its forward pass, and a backward pass about twice as costly):
  Kaplan et al. 2020, "Scaling laws for neural language models", section 2.1; the ``C = 6 N D``
  of Hoffmann et al. 2022;
- ``forward_tokens``: the no-gradient passes (log-probs of the policy, its value head and the
  reference; the prompts a generation prefills), ``generated_tokens``: one KV-cached step each
  (the last token of a response is never fed back, so this counts one step per response too
  many), ``trained_tokens``: the policy's passes with gradients, ``reward_tokens``: what the
  training reward model scores (its calls at training and, for an inference-time method such as
  best-of-n, at evaluation; the harness's own judging is never charged);
- with LoRA (``harness.load.lora``) a trained token is priced at ``6 N`` too, an upper bound: the
  frozen weights' own gradients (about a third of the backward pass) are never computed, so it
  costs about ``4 N``; the adapters' parameters count in ``N`` (a forward pass multiplies by them);
- ``N`` is the policy's parameter count, ``N_rm`` the training reward model's. The reference is
  priced at the policy's ``N``: it is a frozen copy of the base policy unless a suite's
  ``models.reference`` names another model, whose passes are then priced at the policy's size.

Left out, each small at the sizes this harness runs: attention's own term (about
``2 * n_layer * n_ctx * d_model`` per token, Kaplan's table 1), norms and activations, the LM
head skipped over prompt positions when only response logits are computed, the optimizer's
update (per parameter per step, not per token), and padding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from typing import Any

FORWARD_FLOPS = 2
TRAINED_FLOPS = 6
COUNTERS = ("forward_tokens", "trained_tokens", "generated_tokens", "reward_tokens")
SIZES = ("policy_params", "reward_params")


def flops(
    forward_tokens: float,
    trained_tokens: float,
    generated_tokens: float,
    reward_tokens: float,
    policy_params: float,
    reward_params: float,
) -> float:
    """The module's formula: ``2 N (forward + generated) + 6 N trained + 2 N_rm reward``."""
    policy = FORWARD_FLOPS * policy_params * (forward_tokens + generated_tokens)
    trained = TRAINED_FLOPS * policy_params * trained_tokens
    return float(policy + trained + FORWARD_FLOPS * reward_params * reward_tokens)


def ledger(costs: Any, sizes: Mapping[str, int]) -> dict[str, float]:
    """A run's costs as the run table gets them: every field of ``costs`` (a ``Costs`` or a
    mapping), the parameter counts ``sizes`` and ``flops``; without ``sizes`` (a run that failed
    before its models loaded) no FLOPs."""
    counts = asdict(costs) if is_dataclass(costs) and not isinstance(costs, type) else costs
    row = {k: float(v) for k, v in counts.items()}
    if not all(k in sizes for k in SIZES):
        return row
    row.update({k: float(sizes[k]) for k in SIZES})
    row["flops"] = flops(*(row.get(k, 0.0) for k in COUNTERS), *(row[k] for k in SIZES))
    return row


def run_flops(costs: Mapping[str, float]) -> float:
    """The FLOPs of a run's costs mapping (``RunResult.costs``); NaN where it lacks a counter or
    a parameter count (a run recorded before the ledger)."""
    if not all(k in costs for k in (*COUNTERS, *SIZES)):
        return math.nan
    return flops(*(costs[k] for k in COUNTERS), *(costs[k] for k in SIZES))

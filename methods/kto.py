"""KTO: Kahneman-Tversky Optimization (Ethayarajh et al. 2024, eq. 7-8).

Each preference pair gives two unpaired examples: its chosen response is desirable, its rejected
one undesirable. With the implied reward ``r(x, y) = log pi(y|x) - log pi_ref(y|x)`` (summed
log-probs) and the reference point ``z0 = max(0, KL(pi || pi_ref))``,

    ``v(x, y) = lambda_D * sigmoid(beta * (r(x, y) - z0))``  for a desirable y
    ``v(x, y) = lambda_U * sigmoid(beta * (z0 - r(x, y)))``  for an undesirable y
    ``L = E[lambda_y - v(x, y)]``

``z0`` is estimated per batch from mismatched pairs (each prompt with the chosen response of the
next pair in the batch, the authors' and TRL's estimate), as ``max(0, mean r)`` over them, and
detached: no gradient flows through the reference point.
"""

from __future__ import annotations

import torch

from methods import common, pairs
from methods.base import TrainContext
from methods.params import KTOParams
from methods.sampling import Samples


def kto_loss(
    rewards_d: torch.Tensor,
    rewards_u: torch.Tensor,
    z0: torch.Tensor,
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> torch.Tensor:
    """KTO loss, a scalar: the mean over every example of ``lambda_y - v(x, y)``, from the
    implied rewards of the desirable ``[D]`` and undesirable ``[U]`` examples and the
    reference point ``z0`` (a scalar, detached here)."""
    z0 = z0.detach()
    losses_d = desirable_weight * (1 - torch.sigmoid(beta * (rewards_d - z0)))  # [D]
    losses_u = undesirable_weight * (1 - torch.sigmoid(beta * (z0 - rewards_u)))  # [U]
    return torch.cat([losses_d, losses_u]).mean()


def reference_point(rewards_mismatched: torch.Tensor) -> torch.Tensor:
    """``z0 = max(0, mean r)`` over the implied rewards ``[M]`` of mismatched pairs, detached."""
    return rewards_mismatched.detach().mean().clamp(min=0)


def mismatched(samples: Samples, rows: torch.Tensor, responses: torch.Tensor) -> Samples:
    """The prompts of ``rows`` ``[b]`` with the responses of ``responses`` ``[b]`` (rows of the
    same ``samples``, so they share one layout)."""
    prompts, answers = samples.select(rows), samples.select(responses)
    return Samples(
        prompts.prompt_ids,
        prompts.prompt_mask,
        answers.response_ids,
        answers.response_mask,
        prompts.prompts,
        answers.responses,
    )


def batch_loss(
    ctx: TrainContext, round_: pairs.PairRound, batch: torch.Tensor, params: KTOParams
) -> tuple[torch.Tensor, dict[str, float]]:
    """``kto_loss`` of the pairs ``batch`` ``[b]`` (b desirable and b undesirable examples), with
    ``z0`` from the b mismatched pairs (prompt i, chosen response of pair i + 1 mod b)."""
    logps, mask, rows = pairs.policy_logps(ctx, round_, batch)  # [2b, T], [2b, T], [2b]
    assert round_.ref_logps is not None
    rewards = common.sequence_logps(logps, mask) - round_.ref_logps[rows.to(ctx.device)]  # [2b]
    rewards_d, rewards_u = rewards.chunk(2)  # [b], [b]
    chosen = round_.chosen[batch]  # [b]
    with torch.no_grad():  # z0 is detached: its forward passes need no graph
        shifted = mismatched(round_.samples, chosen, chosen.roll(-1))  # [b]
        kl = common.sequence_logps(
            common.token_logps(ctx.policy, shifted), shifted.response_mask
        ) - common.sequence_logps(
            common.token_logps(ctx.reference, shifted), shifted.response_mask
        )  # [b]
    z0 = reference_point(kl)
    loss = kto_loss(
        rewards_d, rewards_u, z0, params.beta, params.desirable_weight, params.undesirable_weight
    )
    stats = {
        "z0": float(z0),
        "desirable_reward": float(rewards_d.detach().mean()),
        "undesirable_reward": float(rewards_u.detach().mean()),
    }
    return loss, stats


def train(ctx: TrainContext, params: KTOParams) -> None:
    """KTO on the dataset's preference pairs split into unpaired examples (``methods.pairs``)."""
    pairs.train_on_pairs(
        ctx,
        lambda c, r, b: batch_loss(c, r, b, params),
        reference=True,
        lr=params.lr,
        max_grad_norm=params.max_grad_norm,
        batch_size=params.batch_size,
        epochs=params.epochs,
    )

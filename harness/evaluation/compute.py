"""Parameter counts of a run's models, as the compute ledger (``harness.core.ledger``) prices
them.

**Parameter count** (``matmul_parameters``): every parameter a token's forward pass multiplies
by, that is all parameters except embedding tables that are only looked up (token and learned
position embeddings). An output projection (LM head) counts, tied to the token embedding or
not: it is a matrix multiply per token. This is neither Kaplan's "non-embedding" count, which
leaves the LM head out too (for the tiny world's policy, vocabulary 1,024 and width 64, the head
is 40% of the multiplies), nor the count of every parameter (a lookup costs no FLOPs).
"""

from __future__ import annotations

import torch


def matmul_parameters(model: torch.nn.Module) -> int:
    """Parameters a token's forward pass multiplies by: every parameter (a shared one once)
    except the weights of ``nn.Embedding`` tables that no other module uses (a table only
    looked up costs nothing; one tied to the LM head is multiplied by)."""
    lookups = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    used = {
        id(p)
        for m in model.modules()
        if not isinstance(m, torch.nn.Embedding)
        for p in m.parameters(recurse=False)
    }
    skip = lookups - used
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def model_sizes(policy: torch.nn.Module, reward_model: torch.nn.Module | None) -> dict[str, int]:
    """``policy_params`` and ``reward_params`` (``matmul_parameters``; 0 without a reward
    model)."""
    rm = matmul_parameters(reward_model) if reward_model is not None else 0
    return {"policy_params": matmul_parameters(policy), "reward_params": rm}

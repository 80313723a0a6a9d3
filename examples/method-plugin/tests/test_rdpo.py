"""R-DPO's loss by hand, and the harness's conformance kit on the installed plugin."""

from __future__ import annotations

import math

import pytest
import torch
from harness_rdpo.train import rdpo_loss

from harness.testing import check_method
from methods import REGISTRY


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def test_loss_by_hand() -> None:
    # h = (-1 - -2) - (-3 - -2) = 2; beta 0.5, alpha 0.1, lengths 12 vs 2:
    # -log sigmoid(0.5 * 2 - 0.1 * 10) = -log sigmoid(0) = log 2
    loss = rdpo_loss(t(-1), t(-3), t(-2), t(-2), t(12), t(2), beta=0.5, alpha=0.1)
    assert loss.item() == pytest.approx(math.log(2), rel=1e-6)
    # alpha 0 is DPO: -log sigmoid(1)
    dpo = rdpo_loss(t(-1), t(-3), t(-2), t(-2), t(12), t(2), beta=0.5, alpha=0.0)
    assert dpo.item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)


def test_registered_from_this_distribution() -> None:
    assert REGISTRY.origin("rdpo") == "harness-rdpo 0.1.0"


def test_conforms_to_the_harness_contract() -> None:
    report = check_method("rdpo")
    assert report.ok, report.summary()

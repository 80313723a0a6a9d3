"""Resolving a suite once: world and hub suites become the same concrete values; training and
evaluation decode each their own way, and the KL row is the untempered policy's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.evaluation import evaluate
from harness.suite.loader import load_suite
from harness.suite.resolve import JudgeRef, resolve
from methods import REGISTRY
from methods.base import Decoding
from methods.generation import HFBackend
from methods.sampling import SampleRequest
from tests.conftest import REPO, load_run

TINY = REPO / "suites" / "tiny.yaml"
TEMPERED = ["eval.decoding.temperature=0.7", "eval.decoding.top_p=0.9"]
SMALL = ["seeds=[0]", "eval.num_prompts=8", "eval.samples_per_prompt=1", "eval.lm_eval.tasks=[]"]


def test_world_suite_resolves_to_local_models_files_and_judges(tiny_world: Path) -> None:
    resolved = resolve(load_suite(TINY))
    assert resolved.world_dir == tiny_world
    assert resolved.policy.path == str(tiny_world / "policy") == resolved.reference.path
    assert resolved.shares_reference
    assert resolved.reward.path == str(tiny_world / "proxy_rm")
    assert resolved.judges["proxy"] == JudgeRef("proxy")
    assert resolved.judges["gold"] == JudgeRef("gold")
    heldout = resolved.judges["heldout"]
    assert heldout.kind == "model" and heldout.model is not None
    assert heldout.model.path == str(tiny_world / "heldout_rm")
    for src in (resolved.data.train_prompts, resolved.data.eval_prompts):
        assert src.source == "file" and src.path is not None and Path(src.path).is_file()
    assert resolved.lm_eval.include == tiny_world / "tasks"


def test_training_decoding_is_its_own(tiny_world: Path) -> None:
    """An eval decoding of 0.7 / 0.9 does not change how methods sample while training."""
    tempered = resolve(load_suite(TINY, TEMPERED))
    assert (tempered.eval_decoding.temperature, tempered.eval_decoding.top_p) == (0.7, 0.9)
    assert (tempered.train_decoding.temperature, tempered.train_decoding.top_p) == (1.0, 1.0)
    own = resolve(load_suite(TINY, [*TEMPERED, "train.decoding.temperature=0.8"]))
    assert (own.train_decoding.temperature, own.train_decoding.top_p) == (0.8, 1.0)


class Recorder(HFBackend):
    """The hf backend, keeping each draw's temperature, top_p and samples."""

    def __init__(self) -> None:
        self.drawn: list[tuple[float, float, Any]] = []

    def sample(self, model: Any, tokenizer: Any, request: SampleRequest, device: Any) -> Any:
        samples = super().sample(model, tokenizer, request, device)
        self.drawn.append((request.temperature, request.top_p, samples))
        return samples


@pytest.mark.slow
def test_tempered_eval_trains_untempered_and_kl_is_untempered(
    tiny_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = load_suite(TINY, [*SMALL, *TEMPERED, "budget.rounds=1", "budget.prompts_per_round=4"])
    ctx, setup = load_run(suite, "raft")
    assert ctx.decoding == Decoding(1.0, 1.0)

    training = Recorder()
    ctx.generation = training
    REGISTRY["raft"].train_fn()(ctx, suite.variant("raft").params)  # type: ignore[misc]
    assert [(t, p) for t, p, _ in training.drawn] == [(1.0, 1.0)]  # one round, untempered

    kl_of: list[Any] = []
    real_kl = evaluate.kl_terms

    def record_kl(policy: Any, reference: Any, samples: Any) -> Any:
        kl_of.append(samples)
        return real_kl(policy, reference, samples)

    evaluating = Recorder()
    setup.generation = evaluating
    monkeypatch.setattr(evaluate, "kl_terms", record_kl)
    rows = evaluate.evaluate_policy(ctx, REGISTRY["raft"], None, setup, None, tmp_path).metrics
    drawn = evaluating.drawn
    # the reference's and the policy's answers at 0.7 / 0.9, then the KL samples at 1 / 1
    assert [(t, p) for t, p, _ in drawn] == [(0.7, 0.9), (0.7, 0.9), (1.0, 1.0)]
    assert len(kl_of) == 1 and kl_of[0] is drawn[2][2]
    kl = next(r for r in rows if r.metric == "kl")
    # trained: the policy moved away from the reference (a Monte-Carlo estimate over 8 samples:
    # its sign is noise, only an untrained policy's is exactly 0)
    assert kl.n == 8 and kl.value != 0.0


@pytest.mark.slow
def test_untempered_eval_reuses_its_answers_for_the_kl(
    tiny_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, setup = load_run(load_suite(TINY, SMALL), "sft")
    setup.generation = evaluating = Recorder()
    rows = evaluate.evaluate_policy(ctx, REGISTRY["sft"], None, setup, None, tmp_path).metrics
    assert len(evaluating.drawn) == 2  # the reference's answers and the policy's; no third draw
    assert next(r for r in rows if r.metric == "kl").value == 0.0


def test_run_ids_cover_the_training_decoding() -> None:
    from harness.suite.runs import run_id

    base = load_suite(TINY, ["seeds=[0]"])
    other = load_suite(TINY, ["seeds=[0]", "train.decoding.temperature=0.9"])
    assert run_id(base, "ppo", 0) != run_id(other, "ppo", 0)

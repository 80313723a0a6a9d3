"""LoRA on the tiny world: every trained method trains with adapters; only the adapters (and
PPO's value head) move and reach the optimizer; the reference stays the base policy (the policy
with its adapters off, no second copy); what leaves the run is the merged policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("peft", reason="LoRA needs peft: pip install -e '.[lora]'")

from harness.evaluation.evaluate import save_policy
from harness.load import lora
from harness.load.models import load_policy
from harness.suite import lora as lora_settings
from harness.suite.loader import SuiteError, load_suite
from harness.suite.resolve import resolve
from methods import REGISTRY, common, ppo, sampling
from tests.methods.helpers import snapshot, train_and_measure

REPO = Path(__file__).resolve().parents[2]
TRAINED = [name for name, method in REGISTRY.items() if method.trains]
SMALL = ["budget.rounds=1", "budget.prompts_per_round=8", "budget.max_new_tokens=16"]


def lora_ctx(make_ctx: Any, method: str, *extra: str) -> tuple[Any, Any]:
    """A tiny-world context of ``method`` with rank-4 adapters, a high learning rate (every
    adapter moves in a step or two) and a small budget."""
    overrides = [*SMALL, f"methods.{method}.lora={{r: 4}}", f"methods.{method}.params.lr=1e-2"]
    torch.manual_seed(0)  # the adapters' initialisation (a run seeds it with its seed)
    return make_ctx(method, overrides=[*overrides, *extra])


def base_policy(tiny_world: Path) -> Any:
    suite = load_suite(REPO / "suites" / "tiny.yaml", ["seeds=[0]"])
    return load_policy(resolve(suite).policy, torch.device("cpu"))[0].eval()


def some_samples(ctx: Any) -> sampling.Samples:
    return sampling.pack(ctx.tokenizer, ctx.prompts[:4], ["Sure.", "First", "", "No"], "cpu")


def adapter_names(model: Any) -> set[str]:
    return {name for name, _ in model.named_parameters() if ".lora_" in name}


def moved(model: Any, before: dict[str, torch.Tensor]) -> set[str]:
    after = dict(model.named_parameters())
    return {name for name, p in before.items() if not torch.equal(p, after[name])}


@pytest.mark.parametrize("method", TRAINED)
def test_every_trained_method_trains_its_adapters_only(
    make_ctx: Any, tiny_world: Path, method: str
) -> None:
    ctx, params = lora_ctx(make_ctx, method)
    assert isinstance(ctx.reference, lora.BaseView)
    before = snapshot(ctx.policy)
    REGISTRY[method].train_fn()(ctx, params)  # type: ignore[misc]
    assert ctx.costs.optimizer_steps >= 1
    # peft's B starts at 0, so an A moves by weight decay at the first step and by its gradient
    # from the second on: after any step every adapter has moved, and nothing else has
    assert moved(ctx.policy, before) == adapter_names(ctx.policy) != set()
    # the reference is still the base policy
    samples = some_samples(ctx)
    with torch.no_grad():
        expected = common.token_logps(base_policy(tiny_world), samples)
        assert torch.equal(common.token_logps(ctx.reference, samples), expected)
        assert not torch.allclose(common.token_logps(ctx.policy, samples), expected)


@pytest.mark.slow
def test_ppo_with_lora_raises_the_proxy_reward(make_ctx: Any) -> None:
    # rank 16, seeds 0, 1, 2 with 2 rounds at lr 3e-4 (full fine-tuning's rate in
    # test_train_ppo), measured on the one draw of 64 prompts x 2 answers the test makes: base
    # -0.203, trained 0.013 / 0.072 / 0.130, i.e. +0.22 to +0.33; over 10 draws of that size,
    # seed 0 gains +0.33 and their spread is 0.22 to 0.42 (one draw is that noisy); untrained,
    # the gain is exactly 0 (the same draws for both); margin: half the smallest
    overrides = ["budget.rounds=2", "methods.ppo.params.lr=3e-4", "methods.ppo.lora={r: 16}"]
    torch.manual_seed(0)  # as execute_run seeds a run of seed 0 before the adapters are made
    ctx, params = make_ctx("ppo", overrides=overrides)
    base, trained = train_and_measure(ctx, ppo.train, params, "ppo with lora")
    assert trained - base > 0.11


def test_ppo_trains_adapters_and_the_value_head_and_nothing_else_reaches_the_optimizer(
    make_ctx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, params = lora_ctx(make_ctx, "ppo")
    heads: list[ppo.ValueHead] = []
    optimized: list[list[torch.nn.Parameter]] = []

    class RecordedHead(ppo.ValueHead):
        def __init__(self, hidden_size: int) -> None:
            super().__init__(hidden_size)
            heads.append(self)

    adamw = common.adamw

    def recorded_adamw(parameters: Any, lr: float, weight_decay: float = 0.01) -> Any:
        groups = list(parameters)  # tensors, or optimizer groups ({"params": [...]})
        optimized.append([p for g in groups for p in (g["params"] if isinstance(g, dict) else [g])])
        return adamw(groups, lr, weight_decay)

    monkeypatch.setattr(ppo, "ValueHead", RecordedHead)
    monkeypatch.setattr(common, "adamw", recorded_adamw)
    before = snapshot(ctx.policy)
    ppo.train(ctx, params)
    assert ctx.costs.optimizer_steps >= 2
    (head,) = heads
    (parameters,) = optimized
    adapters = {id(p) for name, p in ctx.policy.named_parameters() if ".lora_" in name}
    assert {id(p) for p in parameters} == adapters | {id(p) for p in head.parameters()}
    assert moved(ctx.policy, before) == adapter_names(ctx.policy)
    assert all(bool(p.abs().sum() > 0) for p in head.parameters())  # zero-initialised: moved
    # the base weights are frozen: no gradient was ever kept for them
    frozen = [p for name, p in ctx.policy.named_parameters() if ".lora_" not in name]
    assert all(not p.requires_grad and p.grad is None for p in frozen)


def test_the_reference_is_the_policy_with_its_adapters_off_not_a_copy(make_ctx: Any) -> None:
    ctx, _ = lora_ctx(make_ctx, "dpo")
    view = ctx.reference
    policy_weights = {p.data_ptr() for p in ctx.policy.parameters()}
    assert view._model is ctx.policy  # one model in memory, seen two ways
    assert {p.data_ptr() for p in view._model.parameters()} == policy_weights
    # it answers as a frozen copy does: no grad, eval mode, the policy's mode left as it was
    ctx.policy.train()
    logits = view(input_ids=torch.tensor([[1, 5, 9]])).logits
    assert not logits.requires_grad and ctx.policy.training and not view.training
    assert view.config is ctx.policy.config
    assert sampling.accepts_logits_to_keep(view)
    assert sampling.cache_argument(view) == sampling.cache_argument(ctx.policy)


def test_the_merged_policy_is_what_leaves_the_run(make_ctx: Any, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    ctx, params = lora_ctx(make_ctx, "raft")
    REGISTRY["raft"].train_fn()(ctx, params)  # type: ignore[misc]
    plain_names = set(base_policy_names(ctx))
    weights = dict(lora.merged_weights(ctx.policy))
    assert set(weights) == plain_names  # the plain model's names: what a backend loads
    saved = save_policy(ctx.policy, ctx.tokenizer, tmp_path)
    merged = AutoModelForCausalLM.from_pretrained(saved, dtype=torch.float32).eval()
    samples = some_samples(ctx)
    with torch.no_grad():
        want = common.token_logps(ctx.policy, samples)
        torch.testing.assert_close(common.token_logps(merged, samples), want, atol=1e-4, rtol=0)
    # the base weights, saved from the reference, are the base model's
    ctx.reference.save_pretrained(tmp_path / "base")
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "base", dtype=torch.float32)
    with torch.no_grad():
        ref = common.token_logps(ctx.reference, samples)
        assert torch.equal(common.token_logps(base.eval(), samples), ref)


def base_policy_names(ctx: Any) -> list[str]:
    suite = load_suite(REPO / "suites" / "tiny.yaml", ["seeds=[0]"])
    return list(load_policy(resolve(suite).policy, torch.device("cpu"))[0].state_dict())


def test_a_model_without_adapters_yields_its_own_weights(make_ctx: Any) -> None:
    ctx, _ = make_ctx("dpo", overrides=SMALL)
    assert not isinstance(ctx.reference, lora.BaseView)
    assert lora.merged_state_dict(ctx.policy) is None  # save_pretrained saves it as usual
    weights = dict(lora.merged_weights(ctx.policy))
    assert weights.keys() == ctx.policy.state_dict().keys()


def test_a_generation_backend_gets_the_merged_policy_and_the_base_reference(
    make_ctx: Any,
) -> None:
    """What the vllm backend pushes (``checkpoint_weights``, which needs no vLLM): the policy
    merged and the reference as the base, both under the plain model's names; the reference's
    weights version does not change when only the adapters do."""
    from harness.load.vllm import checkpoint_weights, weights_version

    ctx, _ = lora_ctx(make_ctx, "raft")
    plain = base_policy_names(ctx)
    reference_version = weights_version(ctx.reference)
    with torch.no_grad():
        for name, param in ctx.policy.named_parameters():
            if ".lora_B." in name:
                param.add_(torch.randn_like(param))  # the adapters as after training
    with checkpoint_weights(ctx.policy) as weights:
        policy = dict(weights)
    with checkpoint_weights(ctx.reference) as weights:
        reference = dict(weights)
    merged = lora.merged_state_dict(ctx.policy)
    assert merged is not None and list(policy) == list(reference) == plain
    assert all(torch.equal(policy[k], merged[k]) for k in plain)
    assert any(not torch.equal(policy[k], reference[k]) for k in plain)
    assert weights_version(ctx.reference) == reference_version


# --- the suite ------------------------------------------------------------------------------------


def load(*overrides: str) -> Any:
    return load_suite(REPO / "suites" / "zoo.yaml", ["seeds=[0]", *overrides])


def issues(*overrides: str) -> list[str]:
    with pytest.raises(SuiteError) as caught:
        load(*overrides)
    return [f"{i.field}: {i.expected}" for i in caught.value.errors]


def test_suite_lora_fills_every_trained_variant_and_a_variant_gives_its_own() -> None:
    suite = load("train.lora={r: 8}", "methods.dpo.lora={r: 4, target_modules: [q_proj]}")
    by_name = {v.name: v.lora for v in suite.methods}
    assert by_name["sft"] is None and by_name["best_of_n"] is None  # they train nothing
    assert by_name["dpo"] == lora_settings.Lora(r=4, target_modules=["q_proj"])
    assert all(by_name[m] == lora_settings.Lora(r=8) for m in TRAINED if m != "dpo")
    again = type(suite).model_validate(suite.model_dump(mode="json"))
    assert again == suite and again.hash() == suite.hash()


def test_a_suite_without_lora_dumps_and_hashes_as_before() -> None:
    suite = load()
    assert "lora" not in str(suite.model_dump(mode="json"))
    assert load("train.lora={r: 8}").hash() != suite.hash()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("methods.ppo.lora={r: 0}", "methods[2](ppo).lora.r: Input should be greater than"),
        ("methods.ppo.lora={r: 2.5}", "methods[2](ppo).lora.r: Input should be a valid integer"),
        ("methods.ppo.lora={r: '8'}", "methods[2](ppo).lora.r: Input should be a valid integer"),
        ("train.lora={alpha: 0}", "train.lora.alpha: Input should be greater than or equal to 1"),
        ("train.lora={alpha: 0.5}", "train.lora.alpha: Input should be a valid integer"),
        ("train.lora={dropout: 1.0}", "train.lora.dropout: Input should be less than 1"),
        ("train.lora={target_modules: []}", "train.lora.target_modules: at least one module"),
        ("train.lora={target_modules: all}", "train.lora.target_modules: 'all-linear' or a list"),
        ("train.lora={target_modules: ['q proj']}", "target_modules: not module names: 'q proj'"),
        ("train.lora={rank: 8}", "train.lora.rank: unknown key"),
        ("methods.sft.lora={r: 4}", "methods[0].lora: sft trains nothing, so it takes no lora"),
    ],
)
def test_bad_lora_is_named(override: str, message: str) -> None:
    found = issues(override)
    assert any(message in issue for issue in found), found


def test_lora_without_peft_fails_validation_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lora_settings, "peft_installed", lambda: False)
    (issue,) = issues("train.lora={r: 8}")
    assert issue.startswith("train.lora: lora needs 'peft', which is not installed")
    assert "pip install" in issue
    load()  # a suite that asks for no LoRA needs no peft

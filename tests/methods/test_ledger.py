"""The compute ledger: the parameter count and the FLOPs formula against a hand count for a
one-layer Llama, the forward meter (what it charges and what it leaves to ``charge``), and on
the tiny world each counter moved exactly as much as each method spends."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

from harness.core import ledger
from harness.evaluation import compute
from methods import common, dpo, grpo, ppo, raft, sampling
from methods.base import Budget, Costs, Decoding, TrainContext
from methods.reward import RewardModel
from methods.sampling import SampleRequest

# --------------------------------------------------------------------------- by hand


def one_layer(tokenizer: Any, tied: bool, labels: int | None = None) -> Any:
    """A one-layer Llama: vocabulary 60 (the test tokenizer's), width 16, MLP 24, 4 query heads
    and 2 key/value heads of width 4."""
    assert len(tokenizer) == 60
    config = LlamaConfig(
        vocab_size=60,
        hidden_size=16,
        intermediate_size=24,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=tied,
        **({"num_labels": labels} if labels else {}),
    )
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(config) if labels else LlamaForCausalLM(config)
    return model.eval()


# By hand, from the config above (no biases in Llama):
#   attention  q 16x16 = 256, k 16x(2*4) = 128, v 128, o 16x16 = 256        ->   768
#   MLP        gate 16x24 = 384, up 384, down 24x16 = 384                    -> 1,152
#   RMSNorms   before attention 16, before the MLP 16, final 16              ->    48
#   LM head    60x16 = 960 (tied or not: a matrix multiply per token)        ->   960
#   the token embedding, 60x16 = 960, is looked up, not multiplied: left out
POLICY_N = 768 + 1152 + 48 + 960  # 2,928
#   the reward model: the same body, and a score head 16x1 = 16 instead of the LM head
REWARD_N = 768 + 1152 + 48 + 16  # 1,984


@pytest.mark.parametrize("tied", [False, True])
def test_parameter_count_is_the_hand_count(tokenizer: Any, tied: bool) -> None:
    policy = one_layer(tokenizer, tied)
    assert compute.matmul_parameters(policy) == POLICY_N == 2928
    every = sum(p.numel() for p in policy.parameters())
    assert every == POLICY_N + (0 if tied else 960)  # tied: the table is the head, counted once
    assert compute.matmul_parameters(one_layer(tokenizer, tied, labels=1)) == REWARD_N == 1984


def test_flops_of_a_tiny_run_are_the_hand_count(tokenizer: Any, rm_tokenizer: Any) -> None:
    """Two (prompt, response) rows through each kind of spend, every token counted by hand."""
    policy = one_layer(tokenizer, tied=False)
    rm = RewardModel(one_layer(rm_tokenizer, tied=False, labels=1), rm_tokenizer, "cpu")
    ctx = TrainContext(
        method="by-hand",
        policy=policy,
        reference=common.freeze(policy),
        tokenizer=tokenizer,
        reward=rm,
        prompts=[],
        preferences=[],
        budget=Budget(2, 1, 1, 4),
        decoding=Decoding(),
        device=torch.device("cpu"),
        seed=0,
        costs=rm.costs,
    )
    prompts = ["human how assistant", "human what is a good bread assistant"]
    # prompt tokens: <s> human how assistant = 4; <s> human what is a good bread assistant = 8
    # response tokens: no </s> = 2; one two </s> = 3. Real tokens of both rows: 17
    pair = sampling.pack(tokenizer, prompts, ["no", "one two"], "cpu")
    assert pair.prompt_mask.sum() == 12 and pair.response_mask.sum() == 5
    with common.metered(ctx):
        with torch.no_grad():
            common.token_logps(ctx.reference, pair)  # forward: 17
        common.token_logps(ctx.policy, pair).sum().backward()  # trained: 17
        common.charge(ctx.costs, pair)  # as if sampled: generated 5, prompts prefilled 12
        generator = torch.Generator().manual_seed(0)
        sampling.sample(policy, tokenizer, SampleRequest(prompts, 1, 4, 1.0, 1.0, generator), "cpu")
        with common.uncharged():
            common.token_logps(ctx.policy, pair)  # the harness's own: nobody's
    common.token_logps(ctx.policy, pair)  # outside: nobody's
    # the RM reads prompt + response in its own tokenizer: <s> human how assistant no = 5,
    # <s> human what is a good bread assistant one two = 10
    rm([p + " " for p in prompts], ["no", "one two"])
    costs = ctx.costs
    assert (costs.forward_tokens, costs.trained_tokens) == (17 + 12, 17)
    assert (costs.generated_tokens, costs.reward_tokens) == (5, 15)
    # 2 * 2,928 * (29 + 5) + 6 * 2,928 * 17 + 2 * 1,984 * 15 = 199,104 + 298,656 + 59,520
    sizes = compute.model_sizes(ctx.policy, rm.model)
    assert sizes == {"policy_params": 2928, "reward_params": 1984}
    row = ledger.ledger(costs, sizes)
    assert row["flops"] == 557_280
    assert ledger.run_flops(row) == 557_280
    assert row["trained_tokens"] == 17 and row["policy_params"] == 2928
    assert "flops" not in ledger.ledger(costs, {})  # models never loaded: no estimate
    assert ledger.run_flops({"generated_tokens": 5.0}) != ledger.run_flops(row)  # NaN


# --------------------------------------------------------------------------- every method

SMALL = ["budget.rounds=1", "budget.prompts_per_round=4", "budget.max_new_tokens=12"]


def tokens(samples: sampling.Samples) -> int:
    """Real tokens of every row: prompt and response."""
    return int(samples.attention_mask.sum())


def recording(monkeypatch: pytest.MonkeyPatch) -> list[sampling.Samples]:
    """Every ``common.generate``'s samples, in order."""
    drawn: list[sampling.Samples] = []
    generate = common.generate

    def record(*args: Any, **kwargs: Any) -> sampling.Samples:
        drawn.append(generate(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(common, "generate", record)
    return drawn


def train_metered(ctx: Any, train: Any, params: Any) -> Costs:
    with common.metered(ctx):
        train(ctx, params)
    return ctx.costs  # type: ignore[no-any-return]


def test_ppo_charges_its_old_and_reference_passes_and_each_epoch(
    make_ctx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, params = make_ctx("ppo", overrides=SMALL)
    drawn = recording(monkeypatch)
    costs = train_metered(ctx, ppo.train, params)
    (samples,) = drawn
    prefill = int(samples.prompt_mask.sum())
    # rollout: old log-probs and values (policy), reference log-probs: two passes of every row
    assert costs.forward_tokens == prefill + 2 * tokens(samples)
    assert costs.trained_tokens == params.ppo_epochs * tokens(samples)  # each epoch, every row
    assert costs.generated_tokens == int(samples.lengths.sum()) > 0
    assert costs.reward_tokens > costs.generated_tokens  # the RM reads prompt and response


def test_grpo_charges_the_reference_and_one_trained_pass(
    make_ctx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, params = make_ctx("grpo", overrides=SMALL)
    drawn = recording(monkeypatch)
    costs = train_metered(ctx, grpo.train, params)
    (samples,) = drawn  # 16 rows, one mini-batch: on-policy, no separate old log-probs
    assert costs.forward_tokens == int(samples.prompt_mask.sum()) + tokens(samples)
    assert costs.trained_tokens == tokens(samples)
    assert costs.reward_tokens > 0


@pytest.mark.parametrize("adapters", [[], ["methods.dpo.lora={r: 4}"]], ids=["full", "lora"])
def test_offline_dpo_charges_reference_and_trained_passes_and_nothing_sampled(
    make_ctx: Any, adapters: list[str]
) -> None:
    """With LoRA too: the reference (the policy with its adapters off) is charged through the
    policy's passes, as forward tokens."""
    if adapters:
        pytest.importorskip("peft", reason="LoRA needs peft: pip install -e '.[lora]'")
    ctx, params = make_ctx("dpo", overrides=[*SMALL, *adapters])
    costs = train_metered(ctx, dpo.train, params)
    pairs = dpo.offline_rounds(ctx, params)[0].samples  # the same pairs, packed again
    assert costs.forward_tokens == tokens(pairs)  # the reference over both sides of each pair
    assert costs.trained_tokens == params.epochs * tokens(pairs)
    assert (costs.generated_tokens, costs.reward_tokens) == (0, 0)


def test_raft_trains_on_what_it_keeps(make_ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, params = make_ctx("raft", overrides=SMALL)
    drawn = recording(monkeypatch)
    costs = train_metered(ctx, raft.train, params)
    (samples,) = drawn
    assert costs.forward_tokens == int(samples.prompt_mask.sum())  # no reference: prefill only
    kept = costs.trained_tokens
    assert 0 < kept < tokens(samples)  # one of each prompt's K rows
    assert costs.reward_tokens > 0

"""The shared building blocks on a tiny random Llama: sampling, log-probs, packing, RM scoring."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

from methods.base import Costs, DivergenceError
from methods.common import (
    check_finite,
    freeze,
    masked_mean,
    masked_whiten,
    mean_logps,
    sequence_logps,
    sft_loss,
    token_logps,
)
from methods.reward import RewardModel, score_text
from methods.sampling import (
    SampleRequest,
    Samples,
    concat,
    encode_prompts,
    pack,
    sample,
    top_p_filter,
)

PROMPTS = [
    "human how do i make tea assistant",
    "human why assistant",
    "human what is a good bread with milk and sugar assistant",
]

MODELS = ["llama-eager", "llama-sdpa", "gpt2"]  # gpt2: absolute positions, catch bad position ids


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def draw(policy: Any, tokenizer: Any, seed: int, **kwargs: Any) -> Samples:
    args: dict[str, Any] = {"n": 2, "max_new_tokens": 12, "temperature": 1.0, "top_p": 1.0}
    args.update(kwargs)
    return sample(policy, tokenizer, SampleRequest(PROMPTS, generator=gen(seed), **args), "cpu")


def manual_logps(model: Any, prompt: list[int], response: list[int]) -> torch.Tensor:
    """Log-probs of ``response`` after ``prompt``, one unpadded sequence, no helpers."""
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        logps = model(input_ids=ids).logits[0].float().log_softmax(-1)  # [L, V]
    return torch.stack(
        [logps[len(prompt) - 1 + i, tok] for i, tok in enumerate(response)]
    )  # [len(response)]


# --------------------------------------------------------------------------- sampling


def test_sampling_is_deterministic_per_seed(policy: Any, tokenizer: Any) -> None:
    a, b, c = draw(policy, tokenizer, 1), draw(policy, tokenizer, 1), draw(policy, tokenizer, 2)
    assert torch.equal(a.response_ids, b.response_ids) and a.responses == b.responses
    assert a.responses != c.responses


def test_a_request_drawn_in_shares_or_batches_draws_what_it_draws_whole(
    policy: Any, tokenizer: Any
) -> None:
    """A row's tokens come from its own uniforms (``row_uniforms``), so the shares a spread run's
    workers draw, stacked (``concat``), and a request drawn in batches of 2 rows, are the whole
    request's draw to the token; each draw advances the generator alike. (An empty share, as a
    worker with no prompt of a small round has, draws nothing.)"""
    whole = draw(policy, tokenizer, 5, n=3)
    shares, generators = [], []
    for share in [(0, 1), (1, 1), (1, 3)]:
        g = gen(5)
        request = SampleRequest(PROMPTS, 3, 12, 1.0, 1.0, g, share=share)
        shares.append(sample(policy, tokenizer, request, "cpu"))
        generators.append(g.get_state())
    stacked = concat(shares, tokenizer.pad_token_id, "cpu")
    assert len(shares[1]) == 0
    batched = draw(policy, tokenizer, 5, n=3, batch_size=2)
    for got in (stacked, batched):
        assert torch.equal(got.response_ids, whole.response_ids)
        assert torch.equal(got.response_mask, whole.response_mask)
        assert torch.equal(got.prompt_ids, whole.prompt_ids)
        assert got.responses == whole.responses and got.prompts == whole.prompts
    after = gen(5)
    sample(policy, tokenizer, SampleRequest(PROMPTS, 3, 12, 1.0, 1.0, after), "cpu")
    assert all(torch.equal(state, after.get_state()) for state in generators)


def test_sample_layout(policy: Any, tokenizer: Any) -> None:
    s = draw(policy, tokenizer, 3, n=3)
    assert len(s) == 9
    assert s.prompts == [p for p in PROMPTS for _ in range(3)]  # row i * n + j
    assert s.prompt_mask[:, -1].all()  # left padding: every prompt ends in the last column
    assert s.input_ids.shape == s.attention_mask.shape == (9, s.prompt_len + s.lengths.max())
    assert torch.equal(s.lengths, s.response_mask.sum(1))


def test_response_mask_ends_right_after_eos(policy: Any, tokenizer: Any) -> None:
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    s = sample(policy, tokenizer, SampleRequest(PROMPTS * 8, 1, 48, 1.5, 1.0, gen(0)), "cpu")
    saw_eos = False
    for ids, mask in zip(s.response_ids.tolist(), s.response_mask.tolist(), strict=True):
        n = sum(mask)
        assert mask == [1] * n + [0] * (len(mask) - n)  # contiguous, right-padded
        assert all(tok == pad for tok in ids[n:])
        if eos in ids[:n]:
            saw_eos = True
            assert ids.index(eos) == n - 1  # the EOS is the last real token
        else:
            assert n == 48  # no EOS: ran to max_new_tokens
    assert saw_eos


def test_sampling_stops_when_all_rows_are_done(policy: Any, tokenizer: Any) -> None:
    greedy = sample(policy, tokenizer, SampleRequest(PROMPTS[:1], 1, 8, 0.0, 1.0, None), "cpu")
    stop = int(greedy.response_ids[0, 2])  # pretend the third greedy token is the EOS
    first = greedy.response_ids[0].tolist().index(stop)
    s = sample(
        policy,
        tokenizer,
        SampleRequest(PROMPTS[:1], 1, 8, 0.0, 1.0, None, eos_token_id=stop),
        "cpu",
    )
    assert s.response_ids.shape[1] == first + 1
    assert torch.equal(s.response_ids[0], greedy.response_ids[0, : first + 1])


@pytest.mark.parametrize("kind", MODELS)
def test_sampling_uses_no_deprecated_argument(tokenizer: Any, make_model: Any, kind: str) -> None:
    """Sampling calls the model as the installed transformers wants it: no deprecation warning
    (e.g. ``past_key_values`` for ``cache``, removed in 5.40) through Python's warnings or
    transformers' logger, whose once-only memory is cleared first."""
    import logging

    from transformers.utils import logging as hf_logging

    hf_logging.get_logger("transformers").warning_once.cache_clear()  # type: ignore[attr-defined]
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    hf_root = logging.getLogger("transformers")
    hf_root.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sample(
                make_model(kind), tokenizer, SampleRequest(PROMPTS, 2, 6, 1.0, 1.0, gen(0)), "cpu"
            )
    finally:
        hf_root.removeHandler(handler)
    said = [str(w.message) for w in caught] + [r.getMessage() for r in records]
    assert not [m for m in said if "deprecat" in m.lower()], said


@pytest.mark.parametrize("kind", MODELS)
def test_kv_cache_greedy_equals_no_cache_loop(tokenizer: Any, make_model: Any, kind: str) -> None:
    policy = make_model(kind)
    s = sample(
        policy, tokenizer, SampleRequest(PROMPTS, 1, 10, 0.0, 1.0, None, batch_size=2), "cpu"
    )
    for i, prompt in enumerate(PROMPTS):
        ids = tokenizer(prompt)["input_ids"]
        out: list[int] = []
        for _ in range(10):  # recompute the whole sequence each step, no padding, no cache
            with torch.no_grad():
                logits = policy(input_ids=torch.tensor([ids + out])).logits[0, -1]
            out.append(int(logits.argmax()))
            if out[-1] == tokenizer.eos_token_id:
                break
        n = int(s.lengths[i])
        assert s.response_ids[i, :n].tolist() == out


@pytest.mark.parametrize("kind", MODELS)
def test_a_repeated_prompt_is_read_once_and_draws_as_if_read_every_time(
    tokenizer: Any, make_model: Any, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """n samples of a prompt share one prompt forward pass (its rows and logits repeated), and
    draw exactly what running the prompt pass over every row draws (seeded, so any change in a
    cache row or a logit would show in the tokens); greedy copies equal the no-cache loop."""
    policy = make_model(kind)
    prefill_rows: list[int] = []
    hook = policy.register_forward_pre_hook(
        lambda _, args, kwargs: (
            prefill_rows.append(kwargs["input_ids"].shape[0])
            if kwargs["input_ids"].shape[1] > 1
            else None
        ),
        with_kwargs=True,
    )
    request = SampleRequest(PROMPTS, 4, 10, 1.0, 1.0, gen(3), batch_size=8)
    shared = sample(policy, tokenizer, request, "cpu")
    assert prefill_rows == [2, 1]  # rows 0-7: prompts 0 and 1, 4 each; rows 8-11: prompt 2

    def no_repeats(rows: torch.Tensor, **_: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return rows, torch.arange(len(rows))  # every row taken as distinct

    monkeypatch.setattr(torch, "unique", no_repeats)
    every_row = sample(policy, tokenizer, SampleRequest(PROMPTS, 4, 10, 1.0, 1.0, gen(3), 8), "cpu")
    hook.remove()
    assert prefill_rows[2:] == [8, 4]
    assert torch.equal(shared.response_ids, every_row.response_ids)
    assert torch.equal(shared.response_mask, every_row.response_mask)


def test_sampling_restores_train_mode(tokenizer: Any, make_policy: Any) -> None:
    model = make_policy(tokenizer).train()
    sample(model, tokenizer, SampleRequest(PROMPTS[:1], 1, 3, 1.0, 1.0, gen(0)), "cpu")
    assert model.training
    model.eval()
    sample(model, tokenizer, SampleRequest(PROMPTS[:1], 1, 3, 1.0, 1.0, gen(0)), "cpu")
    assert not model.training


def test_batching_does_not_change_greedy_samples(policy: Any, tokenizer: Any) -> None:
    whole = sample(policy, tokenizer, SampleRequest(PROMPTS, 2, 6, 0.0, 1.0, None), "cpu")
    chunked = sample(
        policy, tokenizer, SampleRequest(PROMPTS, 2, 6, 0.0, 1.0, None, batch_size=4), "cpu"
    )
    assert whole.responses == chunked.responses
    assert torch.equal(whole.response_mask, chunked.response_mask)


def test_sampling_edge_cases(policy: Any, tokenizer: Any) -> None:
    empty = sample(policy, tokenizer, SampleRequest([], 2, 5, 1.0, 1.0, None), "cpu")
    assert len(empty) == 0 and empty.responses == []
    nothing = sample(policy, tokenizer, SampleRequest(PROMPTS[:1], 2, 0, 1.0, 1.0, None), "cpu")
    assert nothing.response_ids.shape == (2, 0) and nothing.responses == ["", ""]


def test_top_p_keeps_the_nucleus() -> None:
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    kept = top_p_filter(logits, 0.7).isfinite()[0].tolist()
    assert kept == [True, True, False, False]  # 0.5 < 0.7, 0.5 + 0.3 >= 0.7
    assert top_p_filter(logits, 0.1).isfinite()[0].tolist() == [True, False, False, False]
    assert torch.equal(top_p_filter(logits, 1.0), logits)


def test_encode_prompts_pads_left_whatever_the_tokenizer_says(rm_tokenizer: Any) -> None:
    tok = rm_tokenizer  # a fresh tokenizer this test may change
    tok.padding_side = "right"
    ids, mask = encode_prompts(tok, ["human why", "human how do i"], "cpu")
    assert mask.tolist() == [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]
    assert ids[0, :2].tolist() == [tok.pad_token_id] * 2


# --------------------------------------------------------------------------- log-probs


def strip(s: Samples, i: int) -> Samples:
    """Row ``i`` of ``s`` alone, its padding removed (prompt and response)."""
    pm, rm = s.prompt_mask[i].bool(), s.response_mask[i].bool()
    return Samples(
        s.prompt_ids[i][pm][None],
        s.prompt_mask[i][pm][None],
        s.response_ids[i][rm][None],
        s.response_mask[i][rm][None],
        [s.prompts[i]],
        [s.responses[i]],
    )


@pytest.mark.parametrize("kind", MODELS)
def test_left_padding_gives_the_same_logps(tokenizer: Any, make_model: Any, kind: str) -> None:
    model = make_model(kind)
    s = sample(model, tokenizer, SampleRequest(PROMPTS, 1, 8, 1.0, 1.0, gen(5)), "cpu")
    assert not s.prompt_mask.all()  # the prompts differ in length: some rows are padded
    with torch.no_grad():
        batch = token_logps(model, s)  # [3, T]
        for i in range(len(PROMPTS)):
            n = int(s.lengths[i])
            alone = token_logps(model, strip(s, i))[0]  # [n] no padding at all
            assert torch.allclose(batch[i, :n], alone, atol=1e-5)


def test_token_logps_matches_a_manual_computation(policy: Any, tokenizer: Any) -> None:
    s = draw(policy, tokenizer, 7)
    with torch.no_grad():
        logps = token_logps(policy, s, batch_size=4)
    for i in range(len(s)):
        n = int(s.lengths[i])
        prompt = s.prompt_ids[i][s.prompt_mask[i].bool()].tolist()
        expected = manual_logps(policy, prompt, s.response_ids[i, :n].tolist())
        assert torch.allclose(logps[i, :n], expected, atol=1e-5)
        assert (logps[i, n:] == 0).all()  # masked positions are 0


def test_token_logps_temperature(policy: Any, tokenizer: Any) -> None:
    s = draw(policy, tokenizer, 7)
    row = int(s.prompt_mask.sum(1).argmax())  # the longest prompt: no padding
    with torch.no_grad():
        hot = token_logps(policy, s, temperature=2.0)
        last = policy(input_ids=s.prompt_ids[row : row + 1]).logits[0, -1]  # [V]
    first = int(s.response_ids[row, 0])
    assert torch.allclose(hot[row, 0], (last / 2.0).log_softmax(-1)[first], atol=1e-5)


def test_pack_then_logps_is_the_sum_over_response_tokens(policy: Any, tokenizer: Any) -> None:
    prompts = ["human how do i make tea assistant", "human why assistant"]
    responses = ["boil water then cup", "sorry no"]
    packed = pack(tokenizer, prompts, responses, "cpu")
    assert packed.responses == responses
    assert packed.prompt_mask[:, -1].all()  # prompts left-padded
    assert packed.lengths.tolist() == [5, 3]  # the words plus the EOS
    with torch.no_grad():
        total = sequence_logps(token_logps(policy, packed), packed.response_mask)  # [2]
    for i, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        prompt = tokenizer(p)["input_ids"]
        response = tokenizer(r, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        expected = manual_logps(policy, prompt, response).sum()
        assert torch.allclose(total[i], expected, atol=1e-5)


def test_pack_truncation_drops_the_eos(tokenizer: Any) -> None:
    packed = pack(tokenizer, ["human why"], ["sorry no help"], "cpu", max_response_tokens=2)
    assert packed.response_ids.tolist() == [
        tokenizer(["sorry no"], add_special_tokens=False)["input_ids"][0]
    ]


def test_gradients_flow_through_token_logps(tokenizer: Any, make_policy: Any) -> None:
    model = make_policy(tokenizer).train()
    packed = pack(tokenizer, PROMPTS[:2], ["boil water", "no"], "cpu")
    loss = sft_loss(token_logps(model, packed), packed.response_mask)
    loss.backward()
    moved = [p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()]
    assert all(moved)


# --------------------------------------------------------------------------- reductions


def test_sequence_mean_and_sft_reductions_by_hand() -> None:
    logps = torch.tensor([[-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert sequence_logps(logps, mask).tolist() == [-3.0, -4.0]
    assert mean_logps(logps, mask).tolist() == [-1.5, -4.0]
    assert float(sft_loss(logps, mask)) == pytest.approx((1 + 2 + 4) / 3)  # token mean


def test_masked_mean_and_whiten() -> None:
    values = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, -50.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    assert float(masked_mean(values, mask)) == pytest.approx(2.5)
    assert masked_mean(values, mask, dim=1).tolist() == [1.5, 3.5]
    white = masked_whiten(values, mask)
    real = white[mask.bool()]
    assert float(real.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(real.var(unbiased=True)) == pytest.approx(1.0, abs=1e-4)
    kept = masked_whiten(values, mask, shift_mean=False)[mask.bool()]
    assert float(kept.mean()) == pytest.approx(2.5, abs=1e-5)


def test_check_finite_raises_divergence() -> None:
    check_finite(torch.tensor(1.0), "dpo", 0, 0)
    with pytest.raises(DivergenceError, match="dpo diverged at round 2, step 7"):
        check_finite(torch.tensor(float("nan")), "dpo", 2, 7)
    with pytest.raises(DivergenceError):
        check_finite(float("inf"), "ppo", 0, 1)


def test_freeze_makes_an_independent_frozen_copy(tokenizer: Any, make_policy: Any) -> None:
    model = make_policy(tokenizer).train()
    ref = freeze(model)
    assert not ref.training and not any(p.requires_grad for p in ref.parameters())
    assert all(p.requires_grad for p in model.parameters()) and model.training
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert not torch.equal(next(model.parameters()), next(ref.parameters()))


# --------------------------------------------------------------------------- reward


def test_score_text_ignores_padding_side_and_batch_composition(
    tokenizer: Any, rm_tokenizer: Any, make_reward_model: Any
) -> None:
    assert rm_tokenizer("human why")["input_ids"] != tokenizer("human why")["input_ids"]
    rm = make_reward_model(rm_tokenizer)
    assert rm.config.pad_token_id is None
    prompts = ["human why assistant", "human how do i make tea assistant", "human a"]
    responses = ["sorry", "boil water then pour the water in a cup", "no"]
    alone = torch.cat(
        [
            score_text(rm, rm_tokenizer, [p], [r], "cpu")
            for p, r in zip(prompts, responses, strict=True)
        ]
    )
    assert rm.config.pad_token_id == rm_tokenizer.pad_token_id  # set for last-token pooling
    for side in ("left", "right"):
        rm_tokenizer.padding_side = side
        batched = score_text(rm, rm_tokenizer, prompts, responses, "cpu", batch_size=2)
        assert batched.dtype == torch.float32 and batched.device.type == "cpu"
        assert torch.allclose(batched, alone, atol=1e-5)
    reordered = score_text(rm, rm_tokenizer, prompts[::-1], responses[::-1], "cpu")
    assert torch.allclose(reordered, alone.flip(0), atol=1e-5)


def test_reward_model_counts_calls(rm_tokenizer: Any, make_reward_model: Any) -> None:
    costs = Costs()
    reward = RewardModel(make_reward_model(rm_tokenizer), rm_tokenizer, "cpu", costs)
    scores = reward(["human why", "human a"], ["no", "sorry"])
    assert scores.shape == (2,)
    reward(["human why"], ["no"])
    assert costs.reward_calls == 3
    assert not any(p.requires_grad for p in reward.model.parameters())

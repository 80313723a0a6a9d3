"""The hub path on real HH-RLHF text: a ``models:`` suite over local models, no tiny world.

What ``suites/hh.yaml`` loads from the hub is stood in for by models built here in seconds and
saved with ``save_pretrained`` under ``tmp_path``: a byte-level BPE tokenizer trained on the HH
file's text, a random 2-layer Llama policy, and two random Llama reward models with tokenizers of
their own (not the policy's). The suite reads the HH test split (``/work/shared/data/hh-rlhf``) as
``source: file`` data, with the file's 8 longest dialogues among the training prompts, so every
registered method runs one short round through the real loaders (``load_policy``,
``load_reward``, ``load_judges``, ``load_data``) and ``execute_run``."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from harness.cli.main import app
from harness.core.ledger import run_flops
from harness.load.data import ASSISTANT, HUMAN, split_hh
from harness.suite.loader import load_suite
from harness.suite.resolve import resolve
from harness.suite.runs import RunResult, expand
from harness.suite.schema import ModelRef, Suite
from methods import REGISTRY
from methods.candidates import pairs_by_prompt

REPO = Path(__file__).resolve().parents[1]
HH_FILE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "hh-rlhf"
    / "harmless-base-test.jsonl.gz"
)
HH_SUITE = REPO / "suites" / "hh.yaml"

pytestmark = pytest.mark.skipif(
    not HH_FILE.is_file(), reason=f"the HH-RLHF test split is not at {HH_FILE}"
)

MAX_PROMPT_TOKENS = 128
JUDGE = "second-rm"
PROMPTS_PER_ROUND, ROUNDS, SAMPLES_PER_PROMPT = 8, 1, 2
EVAL_PROMPTS, BEST_OF = 8, 2
SAMPLING = ("ppo", "rrhf", "raft", "pro", "grpo", "rloo")  # draw samples_per_prompt per prompt
EOS, PAD, BOS, UNK = "<|endoftext|>", "<|pad|>", "<s>", "<unk>"


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "HF_HUB_OFFLINE": "1"})


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny matmuls run several times faster on one thread than on two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- the stand-in world


def hh_records() -> list[dict[str, Any]]:
    with gzip.open(HH_FILE, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def bpe_tokenizer(texts: list[str], vocab_size: int, bos: bool) -> Any:
    """A byte-level BPE trained on ``texts``; with ``bos`` it prepends ``<s>`` to every text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [EOS, PAD, BOS] if bos else [EOS, PAD]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", special_tokens=[(BOS, tok.token_to_id(BOS))]
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, eos_token=EOS, pad_token=PAD, bos_token=BOS
        )
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD)


def word_tokenizer(texts: list[str], vocab_size: int) -> Any:
    """A WordLevel tokenizer with no pad token of its own (the loader falls back to EOS), like
    many hub reward models."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(
        vocab_size=vocab_size, special_tokens=[UNK, EOS], show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, unk_token=UNK)


def llama_config(tokenizer: Any, seed: int, **extra: Any) -> Any:
    from transformers import LlamaConfig

    torch.manual_seed(seed)
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        **extra,
    )


def save_reward_model(path: Path, tokenizer: Any, seed: int, pad_token_id: int | None) -> Path:
    from transformers import LlamaForSequenceClassification

    config = llama_config(tokenizer, seed, num_labels=1, pad_token_id=pad_token_id)
    LlamaForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@dataclass(frozen=True)
class World:
    root: Path
    suite_path: Path
    suite: Suite
    longest: list[str]  # the HH file's 8 longest dialogues' prompts, untruncated, longest first


def write_suite(root: Path, policy: Path, reward: Path, judge: Path, prompts: Path) -> Path:
    def model(path: Path, **extra: Any) -> dict[str, Any]:
        return {"path": str(path), "dtype": "float32", **extra}

    suite = {
        "name": "hh-path",
        "models": {
            "policy": model(policy, max_prompt_tokens=MAX_PROMPT_TOKENS),
            "reward": model(reward),
            "judges": {JUDGE: model(judge)},
        },
        "data": {
            "train_prompts": {"source": "file", "path": prompts.name, "format": "prompt"},
            "preferences": {"source": "file", "path": str(HH_FILE), "format": "hh"},
            "eval_prompts": {
                "source": "file",
                "path": str(HH_FILE),
                "format": "hh",
                "limit": EVAL_PROMPTS,
            },
        },
        "methods": [
            {"method": "sft"},
            {"method": "best_of_n", "params": {"n": BEST_OF}},
            {"method": "ppo"},
            {"method": "rrhf", "params": {"candidates": ["policy", "chosen", "rejected"]}},
            {"method": "raft"},
            {"method": "pro"},
            {"method": "dpo", "params": {"pairs": "offline"}},
            {"method": "grpo"},
            {"method": "ipo"},
            {"method": "simpo"},
            {"method": "orpo"},
            {"method": "kto"},
            {"method": "rloo"},
        ],
        "budget": {
            "prompts_per_round": PROMPTS_PER_ROUND,
            "rounds": ROUNDS,
            "samples_per_prompt": SAMPLES_PER_PROMPT,
            "max_new_tokens": 8,
        },
        "seeds": [0],
        "eval": {
            "judges": ["proxy", JUDGE],
            "num_prompts": EVAL_PROMPTS,
            "lm_eval": {"tasks": []},
            "bootstrap": 100,
        },
    }
    path = root / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """Tokenizers, policy, reward model, judge, prompts and suite, built in a few seconds."""
    from transformers import LlamaForCausalLM

    root = tmp_path_factory.mktemp("hh-path")
    records = hh_records()
    chosen, rejected = [r["chosen"] for r in records], [r["rejected"] for r in records]
    # the policy: its own byte-level BPE, saved beside it
    policy_tok = bpe_tokenizer(chosen, 2000, bos=False)
    policy_dir = root / "policy"
    LlamaForCausalLM(
        llama_config(policy_tok, seed=0, pad_token_id=policy_tok.pad_token_id)
    ).save_pretrained(policy_dir)
    policy_tok.save_pretrained(policy_dir)
    # the proxy RM: another BPE (other vocab, prepends BOS); the judge: a WordLevel tokenizer
    # with no pad token and a config whose pad id is its <unk> (as Llama checkpoints ship)
    reward_tok = bpe_tokenizer(rejected, 1500, bos=True)
    reward_dir = save_reward_model(root / "reward", reward_tok, 1, reward_tok.pad_token_id)
    judge_tok = word_tokenizer(chosen + rejected, 3000)
    judge_dir = save_reward_model(root / "judge", judge_tok, 2, judge_tok.unk_token_id)
    # train prompts: the 8 longest HH dialogues' prompts (by characters) first, then ordinary ones
    prompts = list(dict.fromkeys(split_hh(r["chosen"])[0] for r in records))
    longest = sorted(prompts, key=len, reverse=True)[:8]
    ordinary = [p for p in prompts[:40] if p not in longest][:24]
    prompts_path = root / "prompts.jsonl"
    prompts_path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in longest + ordinary))
    suite_path = write_suite(root, policy_dir, reward_dir, judge_dir, prompts_path)
    return World(root, suite_path, load_suite(suite_path), longest)


# --------------------------------------------------------------------------- the tests


def test_world_is_what_the_suite_claims(world: World) -> None:
    """The stand-ins differ where the test needs them to: three tokenizers, and a judge whose
    checkpoint names a pad id other than the one its tokenizer pads with."""
    from transformers import AutoConfig

    from harness.load.models import load_tokenizer

    models = world.suite.models
    assert models is not None
    refs = {"policy": models.policy, "reward": models.reward, **models.judges}
    vocab = {name: len(load_tokenizer(ref)) for name, ref in refs.items()}
    assert len(set(vocab.values())) == 3, vocab
    judge = models.judges[JUDGE]
    assert AutoConfig.from_pretrained(judge.path).pad_token_id != (
        load_tokenizer(judge).pad_token_id
    )
    assert models.policy.max_prompt_tokens == MAX_PROMPT_TOKENS
    assert [v.method for v in world.suite.methods] == list(REGISTRY)


def test_suite_validates_and_passes_preflight(world: World) -> None:
    from harness.run.preflight import check

    result = invoke("validate", str(world.suite_path))
    assert result.exit_code == 0, result.output
    assert f"{len(REGISTRY)} variants x 1 seeds = {len(REGISTRY)}" in result.stdout
    check(world.suite)  # local directories and files: nothing to fetch


def test_longest_dialogues_are_left_truncated(world: World) -> None:
    from harness.load.models import load_data, load_policy
    from harness.suite.resolve import resolve

    resolved = resolve(world.suite)
    _, tokenizer = load_policy(resolved.policy, torch.device("cpu"))

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    assert count(world.longest[0]) > 4 * MAX_PROMPT_TOKENS  # so the cut is real
    data = load_data(resolved.data, world.suite.eval.num_prompts, resolved.policy, tokenizer)
    cut = data.train_prompts[: len(world.longest)]  # the file's first lines, in order
    for prompt, original in zip(cut, world.longest, strict=True):
        assert count(prompt) <= MAX_PROMPT_TOKENS
        assert prompt.endswith(ASSISTANT)
        assert original.endswith(prompt) and len(prompt) < len(original)  # cut from the left
        # at a turn boundary, unless the last human turn alone is over budget (cut mid-turn)
        assert prompt.startswith(HUMAN) or HUMAN not in prompt
    assert any(p.startswith(HUMAN) for p in cut)  # both cases are exercised
    assert any(HUMAN not in p for p in cut)
    assert len(data.eval_prompts) == EVAL_PROMPTS
    assert all(count(p) <= MAX_PROMPT_TOKENS for p in data.train_prompts + data.eval_prompts)
    # the pairs' prompts are cut alike: DPO trains on them, and every train prompt (all taken
    # from the HH file) still finds its pair by text, so RRHF gets its dataset candidates
    assert all(count(p.prompt) <= MAX_PROMPT_TOKENS for p in data.preferences)
    assert all(p.prompt.endswith(ASSISTANT) for p in data.preferences)
    pairs = pairs_by_prompt(data.preferences)
    assert [p for p in data.train_prompts if p not in pairs] == []


@pytest.mark.parametrize("role", ["reward", JUDGE])
def test_reward_scores_text_with_its_own_tokenizer(world: World, role: str) -> None:
    """A batch of texts of different lengths, padded in one call, scores as each text alone."""
    from harness.load.models import load_reward

    models = world.suite.models
    assert models is not None
    ref = models.reward if role == "reward" else models.judges[role]
    rm = load_reward(ref, torch.device("cpu"))
    prompts = ["\n\nHuman: hi\n\nAssistant:", world.longest[0][-600:], HUMAN + " ok" + ASSISTANT]
    responses = [" Hello there, how can I help you today?", " No.", " Sure: " + "fine " * 40]
    scores = rm(prompts, responses)  # [3]
    lengths = {
        len(rm.tokenizer(p + r)["input_ids"]) for p, r in zip(prompts, responses, strict=True)
    }
    assert len(lengths) == 3  # padding is really exercised
    alone = []
    with torch.no_grad():
        for p, r in zip(prompts, responses, strict=True):
            enc = rm.tokenizer(p + r, return_tensors="pt")
            alone.append(float(rm.model(**enc).logits[0, 0]))
    torch.testing.assert_close(scores, torch.tensor(alone), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(REGISTRY))
def test_every_method_runs_one_round_on_hh(world: World, variant: str) -> None:
    from harness.run.execute import execute_run

    (spec,) = expand(resolve(world.suite), [variant])
    result: RunResult = execute_run(spec, world.root / "runs" / variant, shared=None)
    assert result.status == "done", f"{result.error}\n{result.traceback}"
    rows = {m.metric: m for m in result.metrics}
    for judge in ("proxy", JUDGE):
        rate = rows[f"winrate.{judge}"]
        assert 0.0 <= rate.value <= 1.0 and rate.n == EVAL_PROMPTS
    assert result.provenance["device"] == "cpu"
    samples = result.costs["samples"]
    if variant in SAMPLING:
        assert samples == PROMPTS_PER_ROUND * ROUNDS * SAMPLES_PER_PROMPT
    elif variant == "best_of_n":
        assert samples == EVAL_PROMPTS * BEST_OF  # its spend is at inference time
    else:
        assert samples == 0
    if variant == "rrhf":  # every round prompt has a pair: its chosen and rejected are scored too
        assert result.costs["reward_calls"] == samples + 2 * PROMPTS_PER_ROUND
    # the compute ledger: each counter moved where the method spends it, priced in FLOPs
    trained = REGISTRY[variant].trains
    costs = result.costs
    assert (costs["trained_tokens"] > 0) == trained
    assert (costs["generated_tokens"] > 0) == (samples > 0)
    assert (costs["reward_tokens"] > 0) == (costs["reward_calls"] > 0)
    assert (costs["forward_tokens"] > 0) == (samples > 0 or REGISTRY[variant].needs_reference)
    assert costs["policy_params"] > 0 and costs["reward_params"] > 0
    assert costs["flops"] == run_flops(costs) and (costs["flops"] > 0) == (variant != "sft")
    # each round's step statistics are kept, one row per round, for every trained method
    assert [r["round"] for r in result.rounds] == (list(range(ROUNDS)) if trained else [])
    assert sum(r["steps"] for r in result.rounds) == result.costs["optimizer_steps"]
    assert all("loss" in r and "grad_norm" in r for r in result.rounds)


def test_hh_suite_validates_offline() -> None:
    result = invoke("validate", str(HH_SUITE))
    assert result.exit_code == 0, result.output
    assert "suite hh" in result.stdout


def test_hh_suite_run_fails_before_training_offline(tmp_path: Path) -> None:
    """Offline, ``harness run suites/hh.yaml`` exits 2 before training, naming what it lacks."""
    suite = load_suite(HH_SUITE)
    assert suite.models is not None
    hub_cache = Path(__import__("huggingface_hub").constants.HF_HUB_CACHE)
    cached = [
        r.path
        for r in _refs(suite)
        if (hub_cache / f"models--{r.path.replace('/', '--')}").exists()
    ]
    if cached:
        pytest.skip(f"the hub cache holds {cached}: the suite can resolve them")
    out = tmp_path / "results"
    result = invoke("run", str(HH_SUITE), "--out", str(out))
    assert result.exit_code == 2, result.output
    assert not out.exists()  # nothing was started
    message = result.stderr
    for ref in _refs(suite):
        assert f"'{ref.path}'" in message
    assert "Anthropic/hh-rlhf" in message
    assert "suites/tiny.yaml" in message
    assert "Traceback" not in result.output


def _refs(suite: Suite) -> list[ModelRef]:
    assert suite.models is not None
    m = suite.models
    return [m.policy, m.reward, *m.judges.values()]

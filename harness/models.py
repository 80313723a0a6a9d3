"""Loading what a suite names: policies, reward models, judges and data, for world and hub alike.

A ``world`` suite is turned into the same ``Models`` and ``DataSource`` values a hub suite writes
by hand (pointing at the world's directories), so there is one loading path for both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from harness import data as hh
from harness.spec import DataSource, ModelRef, Models, Suite
from methods.base import PreferencePair
from methods.common import RewardModel

WORLD_SPLITS = {
    "train": "train_prompts.jsonl",
    "eval": "eval_prompts.jsonl",
    "preferences": "preferences.jsonl",
}


def world_path(suite: Suite) -> Path:
    """The suite's built world (built now on first use)."""
    from harness.world.build import ensure_world

    assert suite.world is not None
    return ensure_world(suite.world)


def suite_models(suite: Suite) -> Models:
    """The suite's models; for a world suite, its policy, proxy RM and held-out judge."""
    if suite.models is not None:
        return suite.models
    world = world_path(suite)
    policy = ModelRef(path=str(world / "policy"), dtype="float32")
    return Models(
        policy=policy,
        reference=policy,
        reward=ModelRef(path=str(world / "proxy_rm"), dtype="float32"),
        judges={"heldout": ModelRef(path=str(world / "heldout_rm"), dtype="float32")},
    )


def torch_dtype(ref: ModelRef, device: torch.device) -> torch.dtype:
    """bf16 on GPU and float32 on CPU unless the suite names a dtype."""
    if ref.dtype != "auto":
        dtype: torch.dtype = getattr(torch, ref.dtype)
        return dtype
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def _quiet_transformers() -> None:
    from transformers.utils import logging

    logging.disable_progress_bar()  # a "Loading weights" bar per model drowns the run's output


def load_tokenizer(ref: ModelRef) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(
        ref.tokenizer or ref.path, revision=ref.revision, trust_remote_code=ref.trust_remote_code
    )
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_policy(ref: ModelRef, device: torch.device) -> tuple[Any, Any]:
    """(causal LM on ``device``, its tokenizer) for any ``AutoModelForCausalLM``."""
    from transformers import AutoModelForCausalLM

    _quiet_transformers()
    model: Any = AutoModelForCausalLM.from_pretrained(
        ref.path,
        revision=ref.revision,
        dtype=torch_dtype(ref, device),
        trust_remote_code=ref.trust_remote_code,
    )
    model = model.to(device)
    tokenizer = load_tokenizer(ref)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def load_reward(ref: ModelRef, device: torch.device, costs: Any = None) -> RewardModel:
    """A frozen ``AutoModelForSequenceClassification`` that scores text with its own tokenizer."""
    from transformers import AutoModelForSequenceClassification

    _quiet_transformers()
    model: Any = AutoModelForSequenceClassification.from_pretrained(
        ref.path,
        revision=ref.revision,
        dtype=torch_dtype(ref, device),
        trust_remote_code=ref.trust_remote_code,
    )
    model = model.to(device)
    tokenizer = load_tokenizer(ref)
    # The classifier pools at the last token that is not config.pad_token_id, and texts are padded
    # with the tokenizer's pad: they must agree (a checkpoint may name another id, e.g. Llama's
    # <unk> 0 beside a tokenizer padding with EOS), or a padded text is scored at a pad position.
    model.config.pad_token_id = tokenizer.pad_token_id
    return RewardModel(model, tokenizer, device, costs)


Judge = Callable[[list[str], list[str]], torch.Tensor]


def load_judges(
    suite: Suite, device: torch.device, reward: RewardModel | None = None
) -> dict[str, Judge]:
    """Every judge of ``suite.eval.judges`` by name: ``proxy`` (the training RM), ``gold`` (the
    world's gold reward), or a named judge RM."""
    models = suite_models(suite)
    judges: dict[str, Judge] = {}
    for name in suite.eval.judges:
        if name == "proxy":
            judges[name] = reward or load_reward(models.reward, device)
        elif name == "gold":
            from harness.world.gold import gold_reward

            judges[name] = _gold_judge(gold_reward)
        else:
            judges[name] = load_reward(models.judges[name], device)
    return judges


def _gold_judge(fn: Callable[[str, str], float]) -> Judge:
    def judge(prompts: list[str], responses: list[str]) -> torch.Tensor:
        return torch.tensor([fn(p, r) for p, r in zip(prompts, responses, strict=True)])

    return judge


@dataclass(frozen=True)
class SuiteData:
    train_prompts: list[str]
    preferences: list[PreferencePair]
    eval_prompts: list[str]
    reports: list[str]  # one LoadReport summary per source


def _load_source(suite: Suite, src: DataSource, pairs: bool) -> tuple[list[Any], str]:
    if src.source == "world":
        path = world_path(suite) / "data" / WORLD_SPLITS.get(src.split, f"{src.split}.jsonl")
        items, report = (
            hh.load_pairs_file(path, src.limit)
            if pairs
            else hh.load_prompts_file(path, src.format, src.limit)
        )
    elif src.source == "file":
        assert src.path is not None
        items, report = (
            hh.load_pairs_file(src.path, src.limit)
            if pairs
            else hh.load_prompts_file(src.path, src.format, src.limit)
        )
    else:
        assert src.path is not None
        items, report = (
            hh.load_pairs_hub(src.path, src.split, data_dir=src.data_dir, limit=src.limit)
            if pairs
            else hh.load_prompts_hub(
                src.path, src.split, format=src.format, data_dir=src.data_dir, limit=src.limit
            )
        )
    return items, report.summary()


def load_data(suite: Suite, tokenizer: Any = None) -> SuiteData:
    """The suite's prompts and pairs; every prompt (pairs' too) cut from the left to the policy's
    token budget."""
    train, r1 = _load_source(suite, suite.data.train_prompts, pairs=False)
    evals, r2 = _load_source(suite, suite.data.eval_prompts, pairs=False)
    prefs: list[PreferencePair] = []
    reports = [r1, r2]
    if suite.data.preferences is not None:
        prefs, r3 = _load_source(suite, suite.data.preferences, pairs=True)
        reports.append(r3)
    evals = evals[: suite.eval.num_prompts]
    if tokenizer is not None:
        budget = suite_models(suite).policy.max_prompt_tokens
        train = [hh.left_truncate_prompt(p, tokenizer, budget) for p in train]
        evals = [hh.left_truncate_prompt(p, tokenizer, budget) for p in evals]
        # pairs too: DPO trains on their prompts, and RRHF/PRO find a train prompt's pair by text
        prefs = [
            replace(p, prompt=hh.left_truncate_prompt(p.prompt, tokenizer, budget)) for p in prefs
        ]
    return SuiteData(train, prefs, evals, reports)

"""Loading what a resolved suite names: policies, reward models, judges and data.

Every function takes concrete values (``ModelRef``, ``DataSource``, ``JudgeRef``) from
``harness.suite.resolve``; none decides "world or hub" (a world suite arrives as local directories
and files), so there is one loading path for both.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)
from transformers.utils import logging

from harness.load import data as hh
from harness.load import hub as data_hub
from harness.suite.resolve import JudgeRef
from harness.suite.schema import Data, DataSource, ModelRef
from harness.world.gold import gold_reward
from methods.base import PreferencePair
from methods.reward import RewardModel


def torch_dtype(ref: ModelRef, device: torch.device) -> torch.dtype:
    """bf16 on GPU and float32 on CPU unless the suite names a dtype."""
    if ref.dtype != "auto":
        dtype: torch.dtype = getattr(torch, ref.dtype)
        return dtype
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def _quiet_transformers() -> None:
    logging.disable_progress_bar()  # a "Loading weights" bar per model drowns the run's output


def load_tokenizer(ref: ModelRef) -> Any:
    tok = AutoTokenizer.from_pretrained(
        ref.tokenizer or ref.path, revision=ref.revision, trust_remote_code=ref.trust_remote_code
    )
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def _pretrained(auto_class: Any, ref: ModelRef, device: torch.device) -> tuple[Any, Any]:
    """``auto_class.from_pretrained`` of ``ref`` on ``device`` in its dtype, and its tokenizer."""
    _quiet_transformers()
    model: Any = auto_class.from_pretrained(
        ref.path,
        revision=ref.revision,
        dtype=torch_dtype(ref, device),
        trust_remote_code=ref.trust_remote_code,
    )
    return model.to(device), load_tokenizer(ref)


def load_policy(ref: ModelRef, device: torch.device) -> tuple[Any, Any]:
    """(causal LM on ``device``, its tokenizer) for any ``AutoModelForCausalLM``."""
    model, tokenizer = _pretrained(AutoModelForCausalLM, ref, device)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def load_reward(
    ref: ModelRef,
    device: torch.device,
    costs: Any = None,
    prompt_map: Mapping[str, str] | None = None,
) -> RewardModel:
    """A frozen ``AutoModelForSequenceClassification`` that scores text with its own tokenizer;
    ``prompt_map`` (``SuiteData.hh_prompts``) gives it the HH text of a chat-templated prompt."""
    model, tokenizer = _pretrained(AutoModelForSequenceClassification, ref, device)
    # The classifier pools at the last token that is not config.pad_token_id, and texts are padded
    # with the tokenizer's pad: they must agree (a checkpoint may name another id, e.g. Llama's
    # <unk> 0 beside a tokenizer padding with EOS), or a padded text is scored at a pad position.
    model.config.pad_token_id = tokenizer.pad_token_id
    return RewardModel(model, tokenizer, device, costs, prompt_map=prompt_map)


Judge = Callable[[list[str], list[str]], torch.Tensor]


def load_judges(
    judges: Mapping[str, JudgeRef],
    device: torch.device,
    proxy: RewardModel,
    prompt_map: Mapping[str, str] | None = None,
) -> dict[str, Judge]:
    """Every judge by name: ``proxy`` is ``proxy`` (the training RM, as given), ``gold`` the
    world's gold reward, a ``model`` judge its own RM loaded here. With ``prompt_map``
    (``SuiteData.hh_prompts``) every judge scores the HH text of a templated prompt."""
    loaded: dict[str, Judge] = {}
    for name, ref in judges.items():
        if ref.kind == "proxy":
            loaded[name] = proxy
        elif ref.kind == "gold":
            loaded[name] = _gold_judge(gold_reward, prompt_map)
        else:
            assert ref.model is not None
            loaded[name] = load_reward(ref.model, device, prompt_map=prompt_map)
    return loaded


def _gold_judge(
    fn: Callable[[str, str], float], prompt_map: Mapping[str, str] | None = None
) -> Judge:
    hh_of = prompt_map or {}

    def judge(prompts: list[str], responses: list[str]) -> torch.Tensor:
        pairs = zip(prompts, responses, strict=True)
        return torch.tensor([fn(hh_of.get(p, p), r) for p, r in pairs])

    return judge


# --------------------------------------------------------------------------- chat templates

_TURN = re.compile(r"\n\n(Human|Assistant):")
_ROLES = {"Human": "user", "Assistant": "assistant"}


def hh_to_messages(prompt: str) -> list[dict[str, str]]:
    """The turns of an HH prompt as chat messages ``[{"role": "user" | "assistant", "content"}]``,
    contents stripped, the final empty ``Assistant:`` turn dropped. Text before the first marker
    (a prompt cut mid-turn from the left, or a plain prompt with no markers) is a turn of the
    role before the first marker's (``user`` when there is none); two turns of one role in a row
    are joined by a blank line, as chat templates often require alternating roles."""
    parts = _TURN.split(hh.normalize_hh(prompt))  # [head, role, text, role, text, ...]
    turns = [(_ROLES[r], text.strip()) for r, text in zip(parts[1::2], parts[2::2], strict=True)]
    if parts[0].strip():
        head_role = "assistant" if turns and turns[0][0] == "user" else "user"
        turns.insert(0, (head_role, parts[0].strip()))
    if turns and turns[-1] == ("assistant", ""):
        turns.pop()
    messages: list[dict[str, str]] = []
    for role, content in turns:
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] += "\n\n" + content
        else:
            messages.append({"role": role, "content": content})
    return messages


def uses_chat_template(tokenizer: Any, chat_template: str = "auto") -> bool:
    """Whether prompts are rendered with the tokenizer's chat template, per ``ModelRef``'s
    ``chat_template`` (``auto``: when the tokenizer has one)."""
    return chat_template == "auto" and bool(getattr(tokenizer, "chat_template", None))


def policy_prompt(tokenizer: Any, hh_prompt: str, chat_template: str = "auto") -> str:
    """The HH prompt as the policy sees it: rendered with the tokenizer's chat template (with the
    generation prompt) when it has one and ``chat_template`` is ``auto``, else unchanged. A BOS
    the template writes is dropped when the tokenizer adds one itself, so it is not doubled."""
    if not uses_chat_template(tokenizer, chat_template):
        return hh_prompt
    text: str = tokenizer.apply_chat_template(
        hh_to_messages(hh_prompt), tokenize=False, add_generation_prompt=True
    )
    bos = tokenizer.bos_token
    if bos and text.startswith(bos):
        added = tokenizer("", add_special_tokens=True)["input_ids"]
        if added[:1] == [tokenizer.bos_token_id]:
            text = text[len(bos) :]
    return text


def fit_prompt(hh_prompt: str, tokenizer: Any, ref: ModelRef) -> tuple[str, str]:
    """``(prompt as the policy sees it, its HH text)`` within ``ref.max_prompt_tokens`` tokens:
    the HH text is cut from the left (``left_truncate_prompt``) and rendered (``policy_prompt``);
    when the template's own tokens push it over the budget, the HH text is cut again."""
    budget = keep = ref.max_prompt_tokens
    while True:
        cut = hh.left_truncate_prompt(hh_prompt, tokenizer, keep)
        text = policy_prompt(tokenizer, cut, ref.chat_template)
        if text == cut or keep == 1:
            return text, cut
        excess = len(tokenizer(text, add_special_tokens=False)["input_ids"]) - budget
        if excess <= 0:
            return text, cut
        keep = max(1, keep - excess)


@dataclass(frozen=True)
class SuiteData:
    train_prompts: list[str]
    preferences: list[PreferencePair]
    eval_prompts: list[str]
    reports: dict[str, hh.LoadReport]  # per data slot: what its load kept and dropped, by reason
    # policy-format (chat-templated) prompt -> its HH text, for RMs and judges; empty: no template
    hh_prompts: dict[str, str] = field(default_factory=dict)
    eval_clusters: list[str] = field(default_factory=list)  # [len(eval_prompts)] each's cluster


def _load_source(src: DataSource, pairs: bool) -> tuple[list[Any], hh.LoadReport]:
    assert src.path is not None  # resolved: a file or a hub dataset, never the world
    if src.source == "file":
        items, report = (
            hh.load_pairs_file(src.path, src.limit)
            if pairs
            else hh.load_prompts_file(src.path, src.format, src.limit)
        )
    else:
        items, report = (
            data_hub.load_pairs_hub(src.path, src.split, data_dir=src.data_dir, limit=src.limit)
            if pairs
            else data_hub.load_prompts_hub(
                src.path, src.split, format=src.format, data_dir=src.data_dir, limit=src.limit
            )
        )
    return items, report


def load_data(
    data: Data, num_eval_prompts: int, policy: ModelRef, tokenizer: Any = None
) -> SuiteData:
    """The suite's prompts and pairs (``data`` resolved: files or hub datasets), the first
    ``num_eval_prompts`` eval prompts; every prompt (pairs' too) cut from the left to the
    ``policy``'s token budget and rendered with its chat template if it has one
    (``fit_prompt``), so offline pairs and generations share one format; ``hh_prompts`` maps each
    rendered prompt back. Without a ``tokenizer`` prompts stay as read."""
    train, r1 = _load_source(data.train_prompts, pairs=False)
    evals, r2 = _load_source(data.eval_prompts, pairs=False)
    prefs: list[PreferencePair] = []
    reports = {"train_prompts": r1, "eval_prompts": r2}
    if data.preferences is not None:
        prefs, reports["preferences"] = _load_source(data.preferences, pairs=True)
    evals = evals[:num_eval_prompts]
    clusters = eval_clusters(data.eval_prompts, evals)
    if tokenizer is None:
        return SuiteData(train, prefs, evals, reports, eval_clusters=clusters)
    # original prompt -> fit_prompt's (text, HH cut), once per prompt: train and pairs share many
    fitted: dict[str, tuple[str, str]] = {}

    def fit(prompt: str) -> str:
        if prompt not in fitted:
            fitted[prompt] = fit_prompt(prompt, tokenizer, policy)
        return fitted[prompt][0]

    train, evals = [fit(p) for p in train], [fit(p) for p in evals]
    # pairs too: DPO trains on their prompts, and RRHF/PRO find a train prompt's pair by text
    prefs = [replace(p, prompt=fit(p.prompt)) for p in prefs]
    hh_prompts = {text: cut for text, cut in fitted.values() if text != cut}
    return SuiteData(train, prefs, evals, reports, hh_prompts, clusters)


def eval_clusters(src: DataSource, prompts: list[str]) -> list[str]:
    """The cluster of each eval prompt: the one its file names (``cluster`` field), else its own
    (``p<index>``: a prompt no file groups is a cluster of one, as for hub datasets)."""
    named = hh.prompt_clusters(src.path) if src.source == "file" and src.path else {}
    return [named.get(p, f"p{i}") for i, p in enumerate(prompts)]


def describe_data(data: Data, num_eval_prompts: int) -> list[str]:
    """One line per local data file of a resolved suite (world splits are files): what its load
    kept and dropped, by reason; and a line when the eval prompts are fewer than asked for. Hub
    sources are left to the runs (nothing is downloaded here)."""
    sources = {"train_prompts": data.train_prompts, "eval_prompts": data.eval_prompts}
    if data.preferences is not None:
        sources["preferences"] = data.preferences
    lines = []
    for slot, src in sources.items():
        if src.source != "file":
            continue
        _, report = _load_source(src, pairs=slot == "preferences")
        lines.append(f"data {slot}: {report.summary()}")
        if slot == "eval_prompts" and report.kept < num_eval_prompts:
            lines.append(
                f"warning: eval.num_prompts is {num_eval_prompts} but eval_prompts has"
                f" {report.kept}: every run is evaluated on {report.kept}"
            )
    return lines

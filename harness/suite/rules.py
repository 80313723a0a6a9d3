"""The suite's rules across fields, applied to the raw mapping before the schema validates it
(``harness.suite.schema.Suite``): the defaults that depend on the world, and the checks that span
several fields, reported beside the schema's own errors."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Hashable
from typing import Any

from harness.core.judges import PROXY, WORLD_JUDGES
from harness.suite import checkpoints as ckpt
from harness.suite.bounds import MAX_JUDGES, MAX_SEEDS, MAX_VARIANTS
from methods import REGISTRY

# Each data slot's split of the embedded world, and the format of the world's file for it.
WORLD_SPLITS = {"train_prompts": "train", "preferences": "preferences", "eval_prompts": "eval"}
WORLD_FORMATS = {"train_prompts": "prompt", "preferences": "hh", "eval_prompts": "prompt"}
WORLD_LM_EVAL_TASKS = ["tiny_facts", "tiny_arith", "tiny_text"]

Loc = tuple[str | int, ...]


def fill_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """Defaults that depend on the world, filled in a copy of the raw mapping (tolerantly)."""
    data = copy.deepcopy(raw)
    has_world = data.get("world") is not None
    if has_world and data.get("data") is None:
        data["data"] = {slot: {"source": "world"} for slot in WORLD_SPLITS}
    sources = data.get("data")
    for slot, split in WORLD_SPLITS.items():
        src = sources.get(slot) if isinstance(sources, dict) else None
        if isinstance(src, dict) and src.get("source") == "world":
            src.setdefault("split", split)
            src.setdefault("format", WORLD_FORMATS[slot])
    lm_eval = _dig(data, "eval", "lm_eval") or {}
    if isinstance(data.get("eval"), dict) and isinstance(lm_eval, dict) and "tasks" not in lm_eval:
        data["eval"]["lm_eval"] = {**lm_eval, "tasks": WORLD_LM_EVAL_TASKS if has_world else []}
    return data


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def cross_checks(data: dict[str, Any]) -> list[tuple[Loc, Any, str]]:
    """Rules across fields, checked on the raw mapping so they are reported beside type errors.
    Each takes time linear in the suite; a list longer than the schema allows is left to the
    schema's one error (not one error per repeated item)."""
    issues: list[tuple[Loc, Any, str]] = []
    has_world, models = data.get("world") is not None, data.get("models")
    if has_world and models is not None:
        issues.append(
            (("models",), ["world", "models"], "give either `world` or `models`, not both")
        )
    if not has_world and models is None:
        issues.append(((), None, "one of `world` (the tiny world) or `models` is required"))
    for slot in WORLD_SPLITS:
        if not has_world and _dig(data, "data", slot, "source") == "world":
            issues.append((("data", slot, "source"), "world", "source 'world' needs a `world`"))
    methods = data.get("methods")
    names = (
        [m.get("name") or m.get("method") for m in methods if isinstance(m, dict)]
        if isinstance(methods, list)
        else []
    )
    for i in _repeats(names, MAX_VARIANTS):
        issues.append((("methods", i, "name"), names[i], "duplicate variant name"))
    for i, variant in enumerate(methods if isinstance(methods, list) else []):
        method = variant.get("method") if isinstance(variant, dict) else None
        untrained = isinstance(method, str) and method in REGISTRY and not REGISTRY[method].trains
        if untrained and variant.get("lora") is not None:
            msg = f"{method} trains nothing, so it takes no lora"
            issues.append((("methods", i, "lora"), variant["lora"], msg))
    seeds = data.get("seeds")
    if isinstance(seeds, list):
        issues += [(("seeds", i), seeds[i], "duplicate seed") for i in _repeats(seeds, MAX_SEEDS)]
    judges = _dig(data, "eval", "judges")
    if isinstance(judges, list):
        issues += _judge_checks(data, judges, has_world)
    return issues + ckpt.cross_checks(data)


def _repeats(items: list[Any], most: int) -> list[int]:
    """The positions of the items equal to an earlier one (``None`` and unhashable items, which
    the schema refuses, aside); none when there are more than ``most`` items."""
    if len(items) > most:
        return []
    seen: set[Any] = set()
    repeats = []
    for i, item in enumerate(items):
        if item is None or not isinstance(item, Hashable):
            continue
        if item in seen:
            repeats.append(i)
        seen.add(item)
    return repeats


def _judge_checks(data: dict[str, Any], judges: list[Any], has_world: bool) -> list[Any]:
    issues: list[tuple[Loc, Any, str]] = []
    model_judges = _dig(data, "models", "judges")
    named = list(model_judges) if isinstance(model_judges, dict) else []
    known = [PROXY, *(WORLD_JUDGES if has_world else ()), *named]
    if len(judges) > MAX_JUDGES or len(named) > MAX_JUDGES:
        return issues  # the schema says which is too long
    repeats = set(_repeats(judges, MAX_JUDGES))
    for i, judge in enumerate(judges):
        if not isinstance(judge, Hashable):
            continue  # the schema says it is not a name
        if judge in known:
            if i in repeats:
                issues.append((("eval", "judges", i), judge, "duplicate judge"))
        elif judge in WORLD_JUDGES:
            msg = f"judge '{judge}' needs a `world` (hub suites name theirs in models.judges)"
            issues.append((("eval", "judges", i), judge, msg))
        else:
            hint = difflib.get_close_matches(str(judge), known, n=1)
            tip = f"; did you mean '{hint[0]}'?" if hint else ""
            msg = f"unknown judge{tip} (known: {', '.join(known)})"
            issues.append((("eval", "judges", i), judge, msg))
    primary = _dig(data, "eval", "primary_judge")
    if primary is not None and primary not in judges:
        issues.append((("eval", "primary_judge"), primary, "must be one of eval.judges"))
    return issues

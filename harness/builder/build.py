"""Build the tiny world: data, tokenizer, base policy, reward models, capability tasks, card.

Every step is seeded from ``WorldConfig.seed``; the result is saved with ``save_pretrained`` and as
plain files, so the rest of the harness loads it exactly as it loads hub models and datasets.

Layout of a built world directory::

    policy/  proxy_rm/  heldout_rm/           transformers models, each with its tokenizer
    data/train_prompts.jsonl                  {"prompt", "cluster"}   prompts methods train on
    data/eval_prompts.jsonl                   {"prompt", "cluster"}   held out, never trained on
    data/preferences.jsonl                    {"chosen", "rejected"}  HH text: the proxy RM's pairs
    data/pretrain.jsonl                       {"text"}  base-corpus texts (a pre-training loss)
    tasks/tiny_{facts,arith,text}.{yaml,jsonl}  lm-eval tasks (items with "id" and "stratum")
    card.json  card.md                        what was built, and how well it came out
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from harness.builder import measure, store, trainer
from harness.world import card as world_card
from harness.world import tasks as capability_tasks
from harness.world.config import WorldConfig, world_dir
from harness.world.dialogues import Request, all_requests, random_request, random_style, respond
from harness.world.gold import gold_reward

HARMFUL_SHARE = 0.15

Log = Callable[[str], None]
RM_SEED_OFFSETS = {"proxy_rm": 1, "heldout_rm": 2}  # each reward model's pairs: their own draw


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def split_requests(cfg: WorldConfig) -> tuple[list[Request], list[Request]]:
    """Distinct requests, shuffled by the seed: ``cfg.train_prompts`` to train on and
    ``cfg.eval_prompts`` held out, disjoint."""
    requests = all_requests()  # the config checked that there are enough
    random.Random(cfg.seed).shuffle(requests)
    held_out = requests[: cfg.eval_prompts]
    return requests[cfg.eval_prompts : cfg.eval_prompts + cfg.train_prompts], held_out


def _draw(rng: random.Random, pool: list[Request], n: int) -> list[Request]:
    benign = [r for r in pool if not r.harmful]
    harmful = [r for r in pool if r.harmful]
    return [random_request(rng, benign, harmful, HARMFUL_SHARE) for _ in range(n)]


def sft_corpus(cfg: WorldConfig, rng: random.Random) -> list[str]:
    """Mixed-quality dialogues plus the capability items, in HH text."""
    requests = _draw(rng, all_requests(), cfg.sft_dialogues)
    texts = [r.prompt + respond(rng, r, random_style(rng, r)) for r in requests]
    texts += capability_tasks.corpus(cfg.seed)
    rng.shuffle(texts)
    return texts


def gold_pairs(
    rng: random.Random, pool: list[Request], n: int, noise: float
) -> list[dict[str, Any]]:
    """``n`` response pairs of different gold score, ordered by gold, a ``noise`` share flipped."""
    rows: list[dict[str, Any]] = []
    while len(rows) < n:
        (req,) = _draw(rng, pool, 1)
        a, b = (respond(rng, req, random_style(rng, req)) for _ in range(2))
        ga, gb = gold_reward(req.prompt, a), gold_reward(req.prompt, b)
        if ga == gb:
            continue
        chosen, rejected = (a, b) if ga > gb else (b, a)
        flipped = rng.random() < noise
        if flipped:
            chosen, rejected = rejected, chosen
        rows.append(
            {"prompt": req.prompt, "chosen": chosen, "rejected": rejected, "flipped": flipped}
        )
    return rows


def reward_model_pairs(cfg: WorldConfig, pool: list[Request]) -> dict[str, list[dict[str, Any]]]:
    """Each reward model's gold-labelled training pairs, from a draw of its own."""
    return {
        name: gold_pairs(
            random.Random(cfg.seed * 1000 + offset), pool, cfg.rm_pairs, cfg.rm_label_noise
        )
        for name, offset in RM_SEED_OFFSETS.items()
    }


def preference_pairs(
    cfg: WorldConfig, rm_pairs: dict[str, list[dict[str, Any]]]
) -> list[dict[str, str]]:
    """The offline pairs (DPO; RRHF and PRO candidates): the first of the proxy reward model's own
    training pairs, noisy labels included, so every method draws on the same information."""
    return [
        {"chosen": p["prompt"] + p["chosen"], "rejected": p["prompt"] + p["rejected"]}
        for p in rm_pairs["proxy_rm"][: cfg.preference_pairs]
    ]


def build_world(cfg: WorldConfig, out: Path | None = None, log: Log = print) -> Path:
    """Build the world for ``cfg`` into ``out`` (default: its cache dir) and return the path."""
    target = out or world_dir(cfg)
    tmp = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    train_pool, eval_pool = split_requests(cfg)
    corpus = sft_corpus(cfg, rng)
    rm_pairs = reward_model_pairs(cfg, train_pool)
    prefs = preference_pairs(cfg, rm_pairs)
    # each prompt's cluster is its task: prompts of one task share most of their words and
    # their best answers, so they are not independent draws (the evaluation bootstraps clusters)
    _write_jsonl(
        tmp / "data/train_prompts.jsonl",
        [{"prompt": r.prompt, "cluster": r.task} for r in train_pool],
    )
    _write_jsonl(
        tmp / "data/eval_prompts.jsonl",
        [{"prompt": r.prompt, "cluster": r.task} for r in eval_pool],
    )
    _write_jsonl(tmp / "data/preferences.jsonl", prefs)
    capability_tasks.write(tmp / "tasks", cfg.seed)
    capability_tasks.write_pretrain(tmp, corpus)
    tokenizer = trainer.train_tokenizer(corpus, cfg.vocab_size)
    timings["data_and_tokenizer"] = time.perf_counter() - t0
    log(
        f"data: {len(corpus)} SFT dialogues, "
        f"{len(train_pool)} train / {len(eval_pool)} eval prompts"
    )

    t = time.perf_counter()
    policy = trainer.train_policy(cfg, tokenizer, corpus, log)
    trainer.save(policy, tokenizer, tmp / "policy")
    timings["policy"] = time.perf_counter() - t

    rm_stats = {}
    for name, offset in RM_SEED_OFFSETS.items():
        t = time.perf_counter()
        train_pairs = rm_pairs[name]
        test_pairs = gold_pairs(random.Random(cfg.seed * 1000 + offset + 10), eval_pool, 500, 0.0)
        rm, acc = trainer.train_reward_model(
            cfg, tokenizer, policy, train_pairs, test_pairs, offset
        )
        trainer.save(rm, tokenizer, tmp / name)
        rm_stats[name] = {"heldout_pair_accuracy": acc, "train_pairs": len(train_pairs)}
        timings[name] = time.perf_counter() - t
        log(f"{name}: pairwise accuracy against gold on 500 held-out pairs {acc:.3f}")

    t = time.perf_counter()
    measured = measure.measure(tmp, cfg, policy, tokenizer, [r.prompt for r in eval_pool], log)
    timings["card"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    world_card.write(tmp, cfg, rm_stats, measured, timings, store.content_hash(tmp))

    shutil.rmtree(target, ignore_errors=True)
    store.publish(tmp, target)
    return target


def ensure_world(cfg: WorldConfig, root: Path | None = None, log: Log = print) -> Path:
    """The world for ``cfg`` under the cache ``root``, checked against the hash its card records:
    installed from the package when it ships there (the default world), else built on first use.
    A cached world whose files do not give its recorded hash is replaced, with a message."""
    path = world_dir(cfg, root)
    source = store.shipped(cfg)
    if path.exists():
        problem = store.verify(path)
        if (
            problem is None
            and source is not None
            and (store.recorded_hash(path) != store.recorded_hash(source))
        ):
            problem = "it is not the world this package ships"
        if problem is None:
            store.relocate(path)
            return path
        log(f"the cached world {path} is not intact ({problem}): replacing it")
        shutil.rmtree(path, ignore_errors=True)
    if source is not None:
        return store.install(source, path, cfg)
    log(f"building the tiny world (seed {cfg.seed}) into {path} ...")
    return build_world(cfg, path, log)

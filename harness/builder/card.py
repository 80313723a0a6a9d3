"""The world card: what was built and how well it came out, measured, as JSON and markdown."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from harness.evaluation.capability import evaluate as lm_eval_tasks
from harness.world.config import WorldConfig
from harness.world.dialogues import STYLES
from harness.world.gold import gold_reward, style
from harness.world.tasks import TASKS
from methods.generation import HF

CARD_MAX_NEW_TOKENS = 64
CARD_TEMPERATURE = 1.0


def measure(
    world: Path,
    cfg: WorldConfig,
    policy: Any,
    tokenizer: Any,
    eval_prompts: list[str],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Sample the base policy once per eval prompt; score the samples; run the capability tasks."""

    gen = torch.Generator().manual_seed(cfg.seed)
    samples = HF.sample(  # the world is built and measured with the hf backend, always
        policy,
        tokenizer,
        eval_prompts,
        n=1,
        max_new_tokens=CARD_MAX_NEW_TOKENS,
        temperature=CARD_TEMPERATURE,
        top_p=1.0,
        generator=gen,
        device="cpu",
        batch_size=128,
    )
    ended = (samples.response_ids == tokenizer.eos_token_id) & samples.response_mask.bool()
    golds = [gold_reward(p, r) for p, r in zip(samples.prompts, samples.responses, strict=True)]
    styles = Counter(style(p, r) for p, r in zip(samples.prompts, samples.responses, strict=True))
    n = len(golds)
    base = {
        "samples": n,
        "max_new_tokens": CARD_MAX_NEW_TOKENS,
        "eos_rate": float(ended.any(dim=1).float().mean()),
        "mean_tokens": float(samples.lengths.float().mean()),
        "gold_mean": statistics.mean(golds),
        "gold_std": statistics.pstdev(golds),
        "gold_min": min(golds),
        "gold_max": max(golds),
        "style_shares": {s: styles.get(s, 0) / n for s in (*STYLES, "other")},
    }
    log(
        f"base policy: EOS within {CARD_MAX_NEW_TOKENS} tokens {base['eos_rate']:.1%}, "
        f"gold {base['gold_mean']:.2f} ± {base['gold_std']:.2f}"
    )
    scores = lm_eval_tasks(world / "policy", list(TASKS), include_path=world / "tasks")
    capability = {t: {"acc": s.acc, "stderr": s.stderr, "n": s.n} for t, s in scores.items()}
    log("capability (lm-eval): " + ", ".join(f"{t} {s.acc:.3f}" for t, s in scores.items()))
    return {"base_policy": base, "capability": capability}


def write(
    world: Path,
    cfg: WorldConfig,
    rm_stats: dict[str, Any],
    measured: dict[str, Any],
    timings: dict[str, float],
    content_hash: str,
) -> dict[str, Any]:
    card = {
        "world": cfg.model_dump(),
        "key": cfg.key(),
        "content_hash": content_hash,
        "reward_models": rm_stats,
        **measured,
        "build_seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    (world / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    (world / "card.md").write_text(markdown(card))
    return card


def load(world: Path) -> dict[str, Any]:
    card: dict[str, Any] = json.loads((world / "card.json").read_text())
    return card


def markdown(card: dict[str, Any]) -> str:
    base = card["base_policy"]
    lines = [
        f"# Tiny world `{card['key']}` (seed {card['world']['seed']})",
        "",
        f"Content hash `{card['content_hash']}`. The offline preference pairs are the proxy "
        "reward model's training pairs.",
        "",
        "| measure | value |",
        "| --- | --- |",
    ]
    for name, stats in card["reward_models"].items():
        acc = stats["heldout_pair_accuracy"]
        lines.append(f"| {name} pairwise accuracy vs gold (held-out pairs) | {acc:.3f} |")
    lines += [
        f"| base policy EOS within {base['max_new_tokens']} tokens | {base['eos_rate']:.3f} |",
        f"| base policy gold reward, mean ± std "
        f"| {base['gold_mean']:.2f} ± {base['gold_std']:.2f} |",
        f"| base policy gold reward, range | {base['gold_min']:.1f} to {base['gold_max']:.1f} |",
        f"| base policy mean response tokens | {base['mean_tokens']:.1f} |",
    ]
    for task, s in card["capability"].items():
        lines.append(
            f"| lm-eval {task} accuracy (n={s['n']}) | {s['acc']:.3f} ± {s['stderr']:.3f} |"
        )
    lines += ["", "Base policy styles on the evaluation prompts:", ""]
    lines += [f"- {s}: {share:.1%}" for s, share in base["style_shares"].items()]
    total = card["build_seconds"].get("total", 0.0)
    lines += ["", f"Built in {total:.0f} s."]
    return "\n".join(lines) + "\n"

"""Measuring a built world for its card (``harness.world.card``): the base policy's gold rewards,
styles and EOS rate on the evaluation prompts, and its lm-eval capability."""

from __future__ import annotations

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
from methods.sampling import SampleRequest

CARD_MAX_NEW_TOKENS = 64
CARD_TEMPERATURE = 1.0


def by_stratum(strata: list[str], values: list[float]) -> dict[str, float]:
    """The mean of ``values`` per stratum, in the order the strata first appear."""
    sums: dict[str, list[float]] = {}
    for stratum, value in zip(strata, values, strict=True):
        sums.setdefault(stratum, []).append(value)
    return {k: sum(v) / len(v) for k, v in sums.items()}


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
    samples = HF.sample(
        policy,
        tokenizer,
        SampleRequest(
            eval_prompts,
            n=1,
            max_new_tokens=CARD_MAX_NEW_TOKENS,
            temperature=CARD_TEMPERATURE,
            top_p=1.0,
            generator=gen,
            batch_size=128,
        ),
        "cpu",
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
    capability = {
        t: {
            "acc": s.acc,
            "stderr": s.stderr,
            "n": s.n,
            "metric": s.metric,
            "strata": by_stratum(s.strata, s.items),
        }
        for t, s in scores.items()
    }
    log("capability (lm-eval): " + ", ".join(f"{t} {s.acc:.3f}" for t, s in scores.items()))
    return {"base_policy": base, "capability": capability}

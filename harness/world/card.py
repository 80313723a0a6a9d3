"""A built world's card: what its build measured (reward models' accuracy, the base policy's
rewards, styles and capability), as ``card.json`` and a Markdown page. Reading and writing it
needs no torch; measuring it is ``harness.builder.measure``'s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.world.config import WorldConfig


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
        what = "bits per byte" if s.get("metric") == "bits_per_byte" else "accuracy"
        lines.append(f"| lm-eval {task} {what} (n={s['n']}) | {s['acc']:.3f} ± {s['stderr']:.3f} |")
    strata = {t: s["strata"] for t, s in card["capability"].items() if len(s.get("strata", {})) > 1}
    for task, scores in strata.items():
        if len(scores) <= 8:  # the probes stratified by design; a topic per stratum is too many
            shown = ", ".join(f"{k} {v:.2f}" for k, v in scores.items())
            lines.append(f"| {task} by stratum | {shown} |")
    lines += ["", "Base policy styles on the evaluation prompts:", ""]
    lines += [f"- {s}: {share:.1%}" for s, share in base["style_shares"].items()]
    total = card["build_seconds"].get("total", 0.0)
    lines += ["", f"Built in {total:.0f} s."]
    return "\n".join(lines) + "\n"

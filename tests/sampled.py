"""Synthetic results dirs with every judged sample, for the comparison, leaderboard and gate tests.

A judge's score of a sample is ``b_p + shift_v + a_vs + e`` (prompt effect ``b_p ~ N(0, 1)``
shared by every run and the reference, a variant's planted ``shift``, a seed effect ``a ~ N(0,
seed_sd)``, sample noise ``e ~ N(0, 1)``); the reference's is ``b_p + e``. So a shift of 0 is the
reference's own distribution (win-rate 0.5) and two variants with one shift are equal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from harness.report.results import write_tables
from harness.stats.estimates import sample_index
from harness.suite.runs import MetricRow, RunResult

JUDGES = ("proxy", "gold")
PROVENANCE = {
    "suite_hash": "cd" * 32,
    "git_commit": "0123456789abcdef0123456789abcdef01234567",
    "packages": {"torch": "2.10", "transformers": "5.0"},
    "host": "box",
    "device": "cpu",
    "device_name": "cpu",
}


def suite_json(name: str, variants: list[str], seeds: list[int], **eval_: Any) -> dict[str, Any]:
    judges = {"judges": list(JUDGES), "primary_judge": "gold"}
    return {
        "name": name,
        "seeds": seeds,
        "world": {"seed": 0},
        "eval": {**judges, "lm_eval": {"tasks": ["t"], "tolerance": 0.05}, **eval_},
        "methods": [{"name": v, "method": "dpo", "params": {}} for v in variants],
    }


def _scores(rng: np.random.Generator, base: np.ndarray, k: int, shift: float) -> list[float]:
    """``k`` samples per prompt around ``base + shift`` (row ``i * k + j``)."""
    return list(np.repeat(base + shift, k) + rng.normal(0.0, 1.0, base.size * k))


def make_sampled(
    shifts: Mapping[str, float],
    seeds: tuple[int, ...] = (0, 1, 2),
    n_prompts: int = 48,
    n_clusters: int = 6,
    k: int = 3,
    seed_sd: float = 0.05,
    rng_seed: int = 0,
    provenance: Mapping[str, Any] | None = None,
    suite: str = "sampled",
) -> tuple[list[RunResult], dict[str, Any]]:
    """Done runs of every (variant, seed) with their judged samples, and the reference side
    (as ``shared/reference-*.json`` holds it)."""
    rng = np.random.default_rng(rng_seed)
    clusters = [f"c{i % n_clusters}" for i in range(n_prompts)]
    base = {j: rng.normal(0.0, 1.0, n_prompts) for j in JUDGES}
    reference = {
        "prompts": [f"prompt {i}" for i in range(n_prompts)],
        "scores": {j: _scores(rng, base[j], k, 0.0) for j in JUDGES},
        "clusters": clusters,
        "samples_per_prompt": k,
    }
    index = sample_index(n_prompts, k, clusters)
    results = []
    for variant, shift in shifts.items():
        for seed in seeds:
            offset = shift + float(rng.normal(0.0, seed_sd))
            scores = {f"score.{j}": _scores(rng, base[j], k, offset) for j in JUDGES}
            samples = {**index, "length": [10] * (n_prompts * k), **scores}
            metrics = _metrics(scores, reference["scores"], k)
            results.append(
                RunResult(
                    run_id=f"{variant}-{seed}".ljust(16, "0"),
                    suite=suite,
                    variant=variant,
                    method="dpo",
                    seed=seed,
                    status="done",
                    metrics=metrics,
                    provenance=dict(provenance or PROVENANCE),
                    samples=samples,
                )
            )
    return results, reference


def _metrics(
    scores: dict[str, list[float]], ref: dict[str, list[float]], k: int
) -> list[MetricRow]:
    """A run's table rows: per judge the win-rate over matched samples (+-0.1) and the reward,
    a capability delta of 0 +- 0.02."""
    rows = []
    for judge in JUDGES:
        mine, theirs = np.array(scores[f"score.{judge}"]), np.array(ref[judge])
        rate = float(np.mean(np.where(mine > theirs, 1.0, np.where(mine < theirs, 0.0, 0.5))))
        rows.append(MetricRow(f"winrate.{judge}", rate, rate - 0.1, rate + 0.1, mine.size // k))
        rows.append(MetricRow(f"reward.{judge}", float(mine.mean())))
    rows.append(MetricRow("capability_delta.t", 0.0, -0.02, 0.02, 100))
    return rows


def write_sampled_dir(
    root: Path, shifts: Mapping[str, float], name: str = "sampled", **kwargs: Any
) -> Path:
    """``root/<name>`` with ``suite.json``, ``runs/*.json``, ``shared/reference-x.json`` and every
    table ``harness.report.results.write_tables`` writes (samples and comparisons included)."""
    results, reference = make_sampled(shifts, suite=name, **kwargs)
    out = root / name
    (out / "runs").mkdir(parents=True)
    (out / "shared").mkdir()
    seeds = sorted({r.seed for r in results})
    (out / "suite.json").write_text(json.dumps(suite_json(name, list(shifts), seeds)))
    (out / "shared" / "reference-x.json").write_text(json.dumps(reference))
    for result in results:
        (out / "runs" / f"{result.run_id}.json").write_text(result.to_json())
    write_tables(out, results)
    return out

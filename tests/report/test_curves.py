"""The checkpoint tables (``harness.report.curves``) and the leaderboard's curves section
(``harness.report.curve_report``), from synthetic run results with checkpoints: an over-optimising
variant (gold peaks at round 2 and falls while the proxy rises) and a steady one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.report.curve_report import curve_report
from harness.report.curves import ANSWERS_FILE, CURVES_FILE, load_curves, write_curves
from harness.report.leaderboard import html_page, markdown, summarise
from harness.report.results import SuiteInfo, read_table, write_tables
from harness.suite.runs import RunResult
from tests.report.test_results import SUITE_JSON, make_results

PROMPTS = 40
GOLD = {"ppo": [0.0, 0.5, 1.0, 0.4, -0.2], "dpo": [0.0, 0.2, 0.4, 0.5, 0.6]}  # per round
PROXY = {"ppo": [0.0, 0.6, 1.2, 1.8, 2.4], "dpo": [0.0, 0.2, 0.4, 0.5, 0.6]}


def _point(variant: str, seed: int, round_: int, costs: dict[str, float]) -> dict:
    rng = np.random.default_rng(100 * seed + round_)
    kl = 0.0 if round_ == 0 else 0.8 * round_**2
    scores = {
        j: (table[variant][round_] + rng.normal(0, 0.4, PROMPTS)).tolist()
        for j, table in (("gold", GOLD), ("proxy", PROXY), ("heldout", PROXY))
    }
    share = round_ / 4
    return {
        "round": round_,
        "step": 16 * round_,
        "costs": {k: v * share for k, v in costs.items() if k.endswith(("tokens", "samples"))},
        "kl": kl,
        **{f"reward.{j}": float(np.mean(s)) for j, s in scores.items()},
        "eval_seconds": 1.0,
        "answers": {
            "prompt_id": list(range(PROMPTS)),
            "cluster": [f"c{p % 5}" for p in range(PROMPTS)],
            "sample": [0] * PROMPTS,
            "kl": [kl] * PROMPTS,
            **{f"score.{j}": s for j, s in scores.items()},
        },
    }


def results_with_curves() -> list[RunResult]:
    out = []
    for r in make_results():
        if r.status == "done" and r.variant in GOLD:
            points = [_point(r.variant, r.seed, k, r.costs) for k in range(5)]
            r = dataclasses.replace(r, checkpoints=points)
        out.append(r)
    # the failing ppo seed 1 is in make_results; ppo gets a second seed that finished
    extra = next(r for r in out if (r.variant, r.seed) == ("ppo", 0))
    points = [_point("ppo", 1, k, extra.costs) for k in range(5)]
    return [
        *out,
        dataclasses.replace(extra, seed=1, run_id="ppo1".ljust(16, "1"), checkpoints=points),
    ]


def test_curve_tables_are_written_and_removed(tmp_path: Path) -> None:
    results = results_with_curves()
    paths = write_curves(tmp_path, results, ["sft", "dpo", "ppo"])
    assert set(paths) == {CURVES_FILE, "curves.csv", ANSWERS_FILE}
    curves, answers = load_curves(tmp_path)  # type: ignore[misc]
    assert len(curves) == 4 * 5 and list(curves["variant"].unique()) == ["dpo", "ppo"]
    assert {"round", "step", "kl", "reward.gold", "trained_tokens", "flops"} <= set(curves.columns)
    # the last checkpoint spent what the run did: the same FLOPs as the run's ledger
    dpo0 = next(r for r in results if (r.variant, r.seed) == ("dpo", 0))
    last = curves[(curves["run_id"] == dpo0.run_id) & (curves["round"] == 4)].iloc[0]
    assert last["flops"] == pytest.approx(dpo0.costs["flops"], rel=1e-12)
    assert curves.loc[curves["round"] == 0, "flops"].eq(0).all()
    assert len(answers) == 4 * 5 * PROMPTS
    write_curves(tmp_path, make_results())  # no checkpoints any more: no stale tables
    assert load_curves(tmp_path) is None and not (tmp_path / "curves.csv").exists()


def test_the_report_finds_the_over_optimised_variant() -> None:
    results = results_with_curves()
    curves, answers = _tables(results)
    report = curve_report(curves, answers, ["proxy", "heldout", "gold"], "gold")
    assert report.roles.truth == "gold" and report.roles.select == "heldout"
    peaks = report.peaks.set_index("variant")
    assert peaks.loc["ppo", "peak_round"] == 2 and peaks.loc["dpo", "peak_round"] == 4
    assert peaks.loc["ppo", "gap"] > peaks.loc["dpo", "gap"]
    assert report.tests["ppo"].overoptimised and not report.tests["dpo"].overoptimised
    fits = report.fits.set_index(["variant", "judge"])
    assert fits.loc[("ppo", "gold"), "form"] == "rl" and fits.loc[("ppo", "gold"), "n"] == 10
    assert fits.loc[("ppo", "gold"), "beta"] > 0  # the RL form bends down
    # compute-matched: the budget is the smaller total, dpo's; ppo chosen within it by heldout
    assert report.budget == pytest.approx(min(_totals(curves).values()))
    assert set(report.matched["variant"]) == {"dpo", "ppo"}
    assert (report.matched["flops"] <= report.budget * (1 + 1e-9)).all()


def _tables(results: list[RunResult]) -> tuple[pd.DataFrame, pd.DataFrame]:
    from harness.report.curves import answer_table, curve_table

    return curve_table(results), answer_table(results)


def _totals(curves: pd.DataFrame) -> dict[str, float]:
    last = curves[curves["round"] == curves["round"].max()]
    return last.groupby("variant")["flops"].mean().to_dict()


def test_the_leaderboard_shows_curves_only_when_there_are_some(tmp_path: Path) -> None:
    import json

    (tmp_path / "suite.json").write_text(json.dumps(SUITE_JSON))
    results = results_with_curves()
    write_tables(tmp_path, results, SuiteInfo.from_dump(SUITE_JSON))
    long_df, runs_df = read_table(tmp_path)
    info = SuiteInfo.from_dump(SUITE_JSON)
    summary = summarise(long_df, runs_df, info)
    report = curve_report(*load_curves(tmp_path), ["proxy", "heldout", "gold"], "gold")  # type: ignore[misc]
    text = markdown(summary, runs_df, info, report)
    for heading in ("Fits of reward against √KL", "Over-optimisation test", "Compute-matched"):
        assert f"## {heading}" in text
    assert "## Fits" not in markdown(summary, runs_df, info)
    page = html_page(summary, long_df, runs_df, info, report)
    assert page.count("<img") == html_page(summary, long_df, runs_df, info).count("<img") + 2


def test_best_of_n_curves_are_fitted_with_their_own_form() -> None:
    """Best-of-n rows (``bon_curve.parquet``) on R(d) = d(1.2 - 0.4 d) exactly, in units of the
    base policy's SD: the report fits them with the best-of-n form, alpha and beta recovered."""
    curves, answers = _tables(results_with_curves())
    base_sd = float(answers.loc[answers["round"] == 0, "score.gold"].std(ddof=1))
    rows = []
    for seed in (0, 1):
        for n in (1, 2, 4, 8, 16):
            kl = float(np.log(n) - (n - 1) / n)
            d = np.sqrt(kl)
            for j in ("proxy", "heldout", "gold"):
                value = -1.0 + base_sd * d * (1.2 - 0.4 * d)
                rows.append({"variant": "best_of_n", "method": "best_of_n", "seed": seed, "n": n,
                             "kl_bound": kl, "metric": f"reward.{j}", "value": value})  # fmt: skip
    bon = pd.DataFrame(rows)
    report = curve_report(curves, answers, ["proxy", "heldout", "gold"], "gold", bon=bon)
    fit = report.fits.set_index(["variant", "judge"]).loc[("best_of_n", "gold")]
    assert fit["form"] == "bon" and fit["n"] == 10
    assert (fit["alpha"], fit["beta"], fit["r2"]) == pytest.approx((1.2, 0.4, 1.0))
    assert "best_of_n" not in set(report.peaks["variant"]) and report.budget > 0

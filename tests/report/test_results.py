"""Results tables: loading run files, the long and run tables, atomic writes, round trips.

``make_results`` / ``write_results_dir`` build a fixed, hand-made suite of results (3 variants x
2 seeds, one failed run) that the leaderboard and gate tests use too.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest

from harness.core import ledger
from harness.report.results import (
    ResultsError,
    SuiteInfo,
    aggregate,
    corrupt_files,
    load_results,
    read_table,
    seed_interval,
    t95,
    write_tables,
)
from harness.report.tables import LONG_COLUMNS, long_table, run_table
from harness.suite.runs import MetricRow, RunResult

SUITE = "golden"
JUDGES = ("proxy", "heldout", "gold")
TASKS = ("tiny_arith", "tiny_facts")
SUITE_JSON = {
    "name": SUITE,
    "seeds": [0, 1],
    "eval": {
        "judges": list(JUDGES),
        "primary_judge": "gold",
        "lm_eval": {"tasks": list(TASKS), "tolerance": 0.05},
    },
    "methods": [
        {"name": "sft", "method": "sft", "params": {}},
        {"name": "dpo", "method": "dpo", "params": {"beta": 0.1}},
        {"name": "ppo", "method": "ppo", "params": {"lr": 1e-4}},
    ],
}
# (variant, seed) -> win-rate per judge (proxy, heldout, gold), kl, length, capability deltas
QUALITY = {
    ("sft", 0): ((0.50, 0.49, 0.51), 0.0, 30.0, (0.0, 0.0)),
    ("sft", 1): ((0.52, 0.50, 0.48), 0.0, 31.0, (0.0, 0.0)),
    ("dpo", 0): ((0.70, 0.66, 0.64), 2.5, 35.0, (-0.01, 0.0)),
    ("dpo", 1): ((0.74, 0.64, 0.66), 3.5, 37.0, (-0.03, 0.01)),
    ("ppo", 0): ((0.90, 0.72, 0.70), 8.0, 44.0, (-0.08, -0.02)),
}
RUN_IDS = {("sft", 0): "1234567890123456", ("ppo", 1): "00000000000000ff"}


def _metrics(key: tuple[str, int]) -> list[MetricRow]:
    rates, kl, length, deltas = QUALITY[key]
    rows = [
        MetricRow(f"winrate.{j}", r, r - 0.08, r + 0.08, 128)
        for j, r in zip(JUDGES, rates, strict=True)
    ]
    rows += [MetricRow(f"reward.{j}", r * 2 - 1) for j, r in zip(JUDGES, rates, strict=True)]
    rows += [MetricRow("kl", kl, n=128), MetricRow("length", length, n=128)]
    rows += [MetricRow("distinct_1", 0.25 + kl / 100), MetricRow("distinct_2", 0.5 + kl / 100)]
    for task, delta in zip(TASKS, deltas, strict=True):
        rows += [MetricRow(f"capability.{task}", 0.8 + delta, 0.75 + delta, 0.85 + delta, 200)]
        rows += [MetricRow(f"capability_delta.{task}", delta, delta - 0.04, delta + 0.04, 200)]
        rows += [MetricRow(f"regression.{task}", float(delta < -0.05))]
    return rows


def _ledger(variant: str) -> dict[str, float]:
    """The compute ledger of a run: its counters, the tiny world's parameter counts, FLOPs."""
    counters = {
        "forward_tokens": 20_000.0 * (variant != "sft"),
        "trained_tokens": {"sft": 0.0, "dpo": 30_000.0, "ppo": 120_000.0}[variant],
        "reward_tokens": 40_000.0 * (variant != "sft"),
    }
    sizes = {"policy_params": 163_904.0, "reward_params": 98_432.0}
    generated = 6144.0 * (variant != "sft")
    return {
        **counters,
        **sizes,
        "flops": ledger.flops(generated_tokens=generated, **counters, **sizes),
    }


def make_result(variant: str, seed: int) -> RunResult:
    failed = (variant, seed) not in QUALITY
    method = {"sft": "sft", "dpo": "dpo", "ppo": "ppo"}[variant]
    return RunResult(
        run_id=RUN_IDS.get((variant, seed), f"{variant}{seed}".ljust(16, "0")),
        suite=SUITE,
        variant=variant,
        method=method,
        seed=seed,
        status="failed" if failed else "done",
        metrics=[] if failed else _metrics((variant, seed)),
        costs={
            "generated_tokens": 6144.0 * (variant != "sft"),
            "samples": 512.0 * (variant != "sft"),
            "reward_calls": 512.0 * (variant != "sft"),
            "optimizer_steps": {"sft": 0.0, "dpo": 64.0, "ppo": 128.0}[variant],
            "prompts": 128.0,
            "wall_seconds": 10.0 + 20 * seed + {"sft": 0, "dpo": 50, "ppo": 100}[variant],
            "peak_memory_mb": 900.5,
            **_ledger(variant),
        },
        provenance={
            "suite_hash": "ab" * 32,
            "git_commit": "0123456789abcdef0123456789abcdef01234567",
            "packages": {"torch": "2.10", "pandas": "3.0.1", "lm-eval": None},
            "python": "3.11.2",
            "host": "box",
            "device": "cpu",
            "device_name": "cpu",
            "torch_threads": 1,
            "cuda_visible_devices": None,
        },
        error="FloatingPointError: ppo diverged at round 2, step 3: loss is nan.\nLower the lr"
        if failed
        else None,
        traceback="Traceback ...\n" if failed else None,
        attempts=2 if failed else 1,
    )


def make_results() -> list[RunResult]:
    return [make_result(v, s) for v in ("ppo", "dpo", "sft") for s in (1, 0)]


def write_results_dir(root: Path, results: list[RunResult] | None = None) -> Path:
    """``root/golden`` with ``suite.json`` and ``runs/<run_id>.json``; returns it."""
    out = root / SUITE
    (out / "runs").mkdir(parents=True)
    (out / "suite.json").write_text(json.dumps(SUITE_JSON, indent=1))
    for result in make_results() if results is None else results:
        (out / "runs" / f"{result.run_id}.json").write_text(result.to_json())
    return out


# --- loading ----------------------------------------------------------------------------------


def test_load_results_reads_every_run(tmp_path: Path) -> None:
    results = load_results(write_results_dir(tmp_path))
    assert sorted((r.variant, r.seed, r.status) for r in results) == [
        ("dpo", 0, "done"),
        ("dpo", 1, "done"),
        ("ppo", 0, "done"),
        ("ppo", 1, "failed"),
        ("sft", 0, "done"),
        ("sft", 1, "done"),
    ]


def test_load_results_skips_and_reports_unreadable_and_stale_files(tmp_path: Path) -> None:
    out = write_results_dir(tmp_path)
    (out / "runs" / "broken.json").write_text("{not json")
    (out / "runs" / "partial.json").write_text('{"run_id": "x"}')
    stale = make_result("dpo", 0)
    stale = RunResult(**{**stale.__dict__, "variant": "gone", "run_id": "stale"})
    (out / "runs" / "stale.json").write_text(stale.to_json())
    problems: list[str] = []
    results = load_results(out, on_problem=problems.append)
    assert len(results) == 6
    assert any("broken.json" in p and "unreadable" in p for p in problems)
    assert any("partial.json" in p for p in problems)
    assert any("stale.json" in p and "not in suite.json" in p for p in problems)
    # the unreadable files were set aside, so the next load reports only the stale one
    assert sorted(p.name for p in corrupt_files(out)) == ["broken.json", "partial.json"]
    with pytest.warns(UserWarning) as caught:
        load_results(out)
    assert len(caught) == 1 and "stale.json" in str(caught[0].message)


def test_newer_run_of_the_same_variant_and_seed_wins(tmp_path: Path) -> None:
    out = write_results_dir(tmp_path)
    old = make_result("dpo", 0)
    new = RunResult(**{**old.__dict__, "run_id": "newer00000000000", "attempts": 3})
    path = out / "runs" / "newer00000000000.json"
    path.write_text(new.to_json())
    old_path = out / "runs" / f"{old.run_id}.json"
    stamp = old_path.stat().st_mtime
    os.utime(old_path, (stamp - 100, stamp - 100))
    problems: list[str] = []
    results = load_results(out, on_problem=problems.append)
    kept = [r for r in results if (r.variant, r.seed) == ("dpo", 0)]
    assert [r.run_id for r in kept] == ["newer00000000000"]
    assert any("superseded" in p for p in problems)


def test_no_runs_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no runs/ folder"):
        load_results(tmp_path)


# --- tables -----------------------------------------------------------------------------------


def test_long_table_columns_order_and_failed_runs() -> None:
    order = [name for name, _ in SuiteInfo.from_dump(SUITE_JSON).variants]
    df = long_table(make_results(), order)
    assert list(df.columns) == LONG_COLUMNS
    assert list(dict.fromkeys(df["variant"])) == ["sft", "dpo", "ppo"]
    assert not ((df["variant"] == "ppo") & (df["seed"] == 1)).any()  # failed: no metrics
    dpo = df[df["variant"] == "dpo"]
    assert list(dpo["seed"]) == sorted(dpo["seed"])
    assert list(dpo[dpo["seed"] == 0]["metric"]) == sorted(dpo[dpo["seed"] == 0]["metric"])
    assert len(df) == 5 * len(_metrics(("sft", 0)))
    row = df[(df["variant"] == "dpo") & (df["seed"] == 1) & (df["metric"] == "winrate.gold")]
    assert row[["value", "ci_low", "ci_high", "n"]].iloc[0].tolist() == pytest.approx(
        [0.66, 0.58, 0.74, 128]
    )


def test_run_table_has_status_costs_and_provenance() -> None:
    df = run_table(make_results(), ["sft", "dpo", "ppo"])
    for column in ["run_id", "status", "error", "attempts", "wall_seconds", "reward_calls"]:
        assert column in df.columns
    for column in ["git_commit", "device", "device_name", "torch_threads", "suite_hash"]:
        assert column in df.columns
    assert {"pkg.torch", "pkg.pandas", "pkg.lm-eval"} <= set(df.columns)
    failed = df[df["status"] == "failed"].iloc[0]
    assert (failed["variant"], failed["seed"], failed["attempts"]) == ("ppo", 1, 2)
    assert failed["error"].startswith("FloatingPointError")
    assert df["pkg.torch"].iloc[0] == "2.10"
    assert list(df["variant"]) == ["sft", "sft", "dpo", "dpo", "ppo", "ppo"]


def test_tables_round_trip_through_parquet_and_csv(tmp_path: Path) -> None:
    out = write_results_dir(tmp_path)
    results = load_results(out)
    paths = write_tables(out, results)
    tables = ["bon_curve.parquet", "runs.csv", "runs.parquet", "samples.parquet"]
    tables += ["table.csv", "table.parquet"]
    assert sorted(paths) == tables  # no reference side saved: no comparisons
    assert not list(out.glob(".*.tmp"))
    long_df = long_table(results, ["sft", "dpo", "ppo"])
    runs_df = run_table(results, ["sft", "dpo", "ppo"])
    for source in (out, out / "table.parquet", out / "table.csv"):
        got_long, got_runs = read_table(source)
        assert list(got_long.columns) == LONG_COLUMNS
        pd.testing.assert_frame_equal(got_long, long_df)
        assert got_runs is not None
        pd.testing.assert_frame_equal(got_runs, runs_df)
    assert read_table(out / "table.csv")[0]["run_id"].iloc[0] == "1234567890123456"


def test_a_failed_write_keeps_the_old_table_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = write_results_dir(tmp_path)
    results = load_results(out)
    write_tables(out, results)
    before = (out / "table.parquet").read_bytes()

    def broken(self: pd.DataFrame, path: Path, **kwargs: object) -> None:
        Path(path).write_bytes(b"half a table")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", broken)
    with pytest.raises(OSError, match="disk full"):
        write_tables(out, results)
    assert (out / "table.parquet").read_bytes() == before
    assert not list(out.glob(".*.tmp"))


def test_read_table_without_run_table_beside(tmp_path: Path) -> None:
    long_df = long_table(make_results())
    long_df.to_csv(tmp_path / "base.csv", index=False)
    got, runs = read_table(tmp_path / "base.csv")
    assert runs is None
    pd.testing.assert_frame_equal(got, long_df)


def test_read_table_builds_tables_from_run_files(tmp_path: Path) -> None:
    out = write_results_dir(tmp_path)
    long_df, runs_df = read_table(out)
    assert runs_df is not None and len(runs_df) == 6
    assert list(dict.fromkeys(long_df["variant"])) == ["sft", "dpo", "ppo"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("table.parquet", b"not parquet", "unreadable table"),
        ("table.csv", b"a,b\n1,2\n", "missing column"),
        ("table.txt", b"", "not a table"),
    ],
)
def test_bad_tables_are_clear_errors(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ResultsError, match=message):
        read_table(tmp_path / name)


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no such file"):
        read_table(tmp_path / "nope.parquet")
    with pytest.raises(ResultsError, match=r"no table\.parquet"):
        read_table(tmp_path)


# --- aggregation ------------------------------------------------------------------------------


def test_t_quantiles() -> None:
    assert t95(1) == 12.706 and t95(30) == 2.042
    assert t95(120) == pytest.approx(1.98, abs=0.001)


def test_seed_interval_by_hand() -> None:
    # values 0.64, 0.66: mean 0.65, sd 0.0141421, se 0.01, t(1) 12.706 -> +-0.12706
    values = pd.Series([0.64, 0.66])
    mean, low, high = seed_interval(values, values - 0.08, values + 0.08)
    assert (mean, low, high) == pytest.approx((0.65, 0.65 - 0.12706, 0.65 + 0.12706))
    one = seed_interval(pd.Series([0.7]), pd.Series([0.62]), pd.Series([0.78]))
    assert one == pytest.approx((0.7, 0.62, 0.78))  # one seed: its own interval
    empty = seed_interval(pd.Series([math.nan]), pd.Series([0.1]), pd.Series([0.2]))
    assert all(math.isnan(x) for x in empty)


def test_aggregate_one_row_per_variant_and_metric() -> None:
    agg = aggregate(long_table(make_results(), ["sft", "dpo", "ppo"]))
    row = agg[(agg["variant"] == "dpo") & (agg["metric"] == "winrate.gold")].iloc[0]
    assert (row["method"], row["seeds"]) == ("dpo", 2)
    assert row["mean"] == pytest.approx(0.65)
    assert row["ci_high"] == pytest.approx(0.65 + 0.12706)
    ppo = agg[(agg["variant"] == "ppo") & (agg["metric"] == "winrate.gold")].iloc[0]
    assert (ppo["seeds"], ppo["ci_low"]) == (1, pytest.approx(0.62))


def test_comparisons_are_written_beside_the_samples(tmp_path: Path) -> None:
    from tests.sampled import write_sampled_dir

    out = write_sampled_dir(tmp_path, {"a": 0.0, "b": 0.5}, seeds=(0, 1), n_prompts=8, k=2)
    paths = write_tables(out, load_results(out))
    assert {"samples.parquet", "reference_samples.parquet", "comparisons.parquet"} <= set(paths)
    comparisons = pd.read_parquet(paths["comparisons.parquet"])
    assert set(comparisons["judge"]) == {"proxy", "gold"} and len(comparisons) == 2 * 2
    assert not list(out.glob(".*.tmp"))

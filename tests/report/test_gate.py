"""The regression gate: the rule by hand on seed means, the paired rule on samples, `harness
check` exit codes (0 pass, 1 regression, 3 inconclusive, 2 bad input), its messages and its
provenance warning."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from scipy import stats
from typer.testing import CliRunner

from harness.cli.results import register
from harness.report.gate import GateInputError, check
from harness.report.results import ship_baseline, write_tables
from harness.report.tables import long_table
from tests.report.test_results import SUITE_JSON, load_results, make_results, write_results_dir
from tests.sampled import PROVENANCE, write_sampled_dir


def invoke(*args: str):
    app = typer.Typer()
    register(app)
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    """A results dir with its tables written: ``golden/table.parquet`` beside ``suite.json``."""
    out = write_results_dir(tmp_path / "base")
    write_tables(out, load_results(out))
    return out / "table.parquet"


def _worse(baseline: Path, tmp_path: Path, variant: str, metric: str, by: float) -> Path:
    """A copy of the baseline table with ``metric`` of ``variant`` lowered by ``by`` (all seeds)."""
    df = pd.read_parquet(baseline)
    rows = (df["variant"] == variant) & (df["metric"] == metric)
    df.loc[rows, ["value", "ci_low", "ci_high"]] -= by
    path = tmp_path / "candidate.parquet"
    df.to_parquet(path, index=False)
    return path


# --- the rule (seed means: each side's mean over seeds and its interval) -----------------------


def _table(rows: list[tuple[str, int, str, float, float, float]], suite: str = "s") -> pd.DataFrame:
    columns = ["variant", "seed", "metric", "value", "ci_low", "ci_high"]
    df = pd.DataFrame(rows, columns=columns)
    return df.assign(suite=suite, run_id=df["variant"] + df["seed"].astype(str), method="m", n=100)


def _one(base: tuple[float, ...], cand: tuple[float, ...], own: float = 0.01, **kw: float):
    """The one verdict row of winrate.gold, one seed per value (intervals +-``own`` around
    each)."""
    rows = [
        [("a", seed, "winrate.gold", v, v - own, v + own) for seed, v in enumerate(values)]
        for values in (base, cand)
    ]
    verdict = check(_table(rows[0]), _table(rows[1]), **kw)
    assert len(verdict.rows) == 1
    return verdict, verdict.rows[0]


def _welch(*levels: tuple[float, int]) -> float:
    """The 97.5% t quantile of seed levels ``(variance, df)`` taken as one (Welch-Satterthwaite
    degrees of freedom) times their summed variance, squared: a half-width's square."""
    total = sum(v for v, _ in levels)
    df = total**2 / sum(v**2 / d for v, d in levels)
    return float(stats.t.isf(0.025, df)) ** 2 * total


def _half(*sides: tuple[float, ...]) -> float:
    """The seed-means half-width of two sides' per-seed values (no variance components stored):
    the sides' s^2 / S on t (Welch-Satterthwaite), and each side's runs' own +-0.01."""
    levels = [(float(np.var(v, ddof=1)) / len(v), len(v) - 1) for v in sides]
    return math.sqrt(_welch(*levels) + 2 * 0.01**2)


def test_the_difference_carries_both_sides_seed_variance() -> None:
    base, cand = (0.65, 0.75, 0.70), (0.55, 0.65, 0.60)
    verdict, row = _one(base, cand)
    half = _half(base, cand)  # 0.176
    assert (row.diff, row.ci_low, row.ci_high) == pytest.approx(
        (-0.10, -0.10 - half, -0.10 + half), abs=1e-5
    )
    assert row.basis == "seed means + the runs' own intervals" and row.seed_level == "measured"
    # a drop of 0.10 is beyond the tolerance, but the interval reaches above 0: undecided, and
    # an interval of half-width below 0.10 would make it a regression
    assert row.status == "inconclusive" and row.decides_at == pytest.approx(0.10)
    assert verdict.overall == "inconclusive" and not verdict.passed


def test_one_seed_a_side_with_nothing_to_borrow_is_training_variance_unknown() -> None:
    # one run each, with its own (prompt-only) interval: nothing says what another training
    # run would give, so no interval is claimed and nothing passes
    verdict, row = _one((0.70,), (0.70,))
    assert row.status == "inconclusive" and row.seed_level == "none"
    assert verdict.overall == "inconclusive"
    assert math.isnan(row.ci_low) and math.isnan(row.ci_high)
    assert "training variance unknown" in row.reason()
    # a one-seed candidate against a baseline of three seeds borrows the baseline's
    _, row = _one((0.69, 0.70, 0.71), (0.70,))
    assert row.seed_level == "borrowed from the baseline's seeds"
    # its one run varies as one of the baseline's: s^2 = 0.0001 on 2 degrees of freedom
    borrowed = _welch((0.0001, 2), (0.0001 / 3, 2)) + 2 * 0.01**2
    assert row.ci_high - row.diff == pytest.approx(math.sqrt(borrowed), rel=1e-4)


def test_pass_regression_and_inconclusive() -> None:
    steady = (0.695, 0.70, 0.705, 0.70)  # s = 0.0041: half-width 0.0092 for two such sides
    # regression: drop 0.10 > 0.05 and the interval lies below 0
    verdict, row = _one(steady, tuple(v - 0.10 for v in steady))
    assert row.status == "regression" and verdict.overall == "regression"
    assert "dropped 0.100, beyond the tolerance 0.050" in row.reason()
    # pass: d = -0.02, low = -0.029 >= -0.05: a drop beyond the tolerance is ruled out
    verdict, row = _one(steady, tuple(v - 0.02 for v in steady))
    assert row.status == "pass" and verdict.overall == "pass" and verdict.passed
    # inconclusive: d = -0.02 with a wide interval; a half-width of 0.03 would pass it
    verdict, row = _one((0.66, 0.74, 0.70), (0.64, 0.72, 0.68))
    assert row.status == "inconclusive" and row.decides_at == pytest.approx(0.03)
    assert "a half-width of 0.030 would decide it" in row.reason()
    # a gain passes when its interval rules out a drop beyond the tolerance, not otherwise
    assert _one(steady, tuple(v + 0.2 for v in steady))[1].status == "pass"
    assert _one(steady, (0.5, 0.99, 0.7))[1].status == "inconclusive"


def test_a_drop_exactly_at_the_tolerance_passes_despite_float_error() -> None:
    base, cand = (0.80, 0.80), (0.70, 0.70)
    assert 0.80 - 0.70 > 0.1  # 0.10000000000000009 in floats
    assert _one(base, cand, 0.0, tolerance_override=0.1)[1].status == "pass"
    assert _one(base, cand, 0.0, tolerance_override=0.0999)[1].status == "regression"


def test_tolerance_override_and_missing_metrics() -> None:
    base = _table([("a", s, "winrate.gold", 0.70, 0.69, 0.71) for s in (0, 1)])
    base = pd.concat([base, _table([("a", 0, "kl", 3.0, 2.0, 4.0)])])
    base = pd.concat([base, _table([("a", 0, "capability_delta.x", -0.01, -0.05, 0.03)])])
    cand = _table([("a", s, "winrate.gold", 0.60, 0.59, 0.61) for s in (0, 1)])
    cand = pd.concat([cand, _table([("a", 0, "kl", 9.0, 8.0, 10.0)])])
    verdict = check(base, cand, tolerance_override=0.2)
    statuses = {r.metric: r.status for r in verdict.rows}
    assert statuses == {"winrate.gold": "pass", "capability_delta.x": "missing"}  # kl: not gated
    assert [r.metric for r in verdict.rows] == ["winrate.gold", "capability_delta.x"]
    assert verdict.overall == "regression" and math.isnan(verdict.missing[0].candidate)
    assert verdict.tolerance_source == "--tolerance"


def test_capability_deltas_keep_the_items_variance_beside_the_seeds() -> None:
    # two seeds a side that agree exactly: the seeds show no variance, the items still do
    # (each run's own interval, +-0.04: a normal SE of 0.0204 a side)
    base = _table([("a", s, "capability_delta.x", 0.0, -0.04, 0.04) for s in (0, 1)])
    cand = _table([("a", s, "capability_delta.x", -0.02, -0.06, 0.02) for s in (0, 1)])
    row = check(base, cand, tolerance_override=0.1).rows[0]
    se = 0.04 / 1.96
    assert row.ci_high - row.diff == pytest.approx(1.96 * math.sqrt(2 * se**2), rel=1e-4)
    assert row.status == "pass"  # low = -0.02 - 0.057 >= -0.1


def test_tolerance_comes_from_the_baseline_never_the_candidate(
    baseline: Path, tmp_path: Path
) -> None:
    lm_eval = {**SUITE_JSON["eval"]["lm_eval"], "tolerance": 0.3}
    suite = {**SUITE_JSON, "eval": {**SUITE_JSON["eval"], "lm_eval": lm_eval}}
    (baseline.parent / "suite.json").write_text(json.dumps(suite))
    verdict = check(baseline, _worse(baseline, tmp_path, "dpo", "winrate.gold", 0.2))
    assert verdict.tolerance == 0.3 and verdict.tolerance_source == "baseline suite.json"
    assert "regression" not in {r.status for r in verdict.rows}
    # the candidate's suite.json (beside its table) is not asked
    cand = tmp_path / "cand" / "table.parquet"
    cand.parent.mkdir()
    cand.write_bytes(baseline.read_bytes())
    (cand.parent / "suite.json").write_text(json.dumps(suite))
    plain = tmp_path / "plain.parquet"
    plain.write_bytes(baseline.read_bytes())
    verdict = check(plain, cand)
    assert (verdict.tolerance, verdict.tolerance_source) == (0.05, "default")


def test_frame_of_the_verdict(baseline: Path) -> None:
    frame = check(baseline, baseline).to_frame()
    assert list(frame.columns)[:3] == ["variant", "against", "metric"]
    assert {"diff", "ci_low", "ci_high", "status", "basis"} <= set(frame.columns)
    assert set(frame["variant"]) == {"sft", "dpo", "ppo"}
    assert len(frame) == 3 * (3 + 2)  # 3 variants x (3 judges + 2 tasks)
    # no samples beside these tables: the prompt level is the runs' own intervals'
    assert set(frame["basis"]) == {"seed means + the runs' own intervals"}
    assert (frame["diff"] == 0).all()


def test_bad_arguments() -> None:
    base = long_table(make_results())
    with pytest.raises(GateInputError, match="--against needs --variant"):
        check(base, base, against="dpo")
    with pytest.raises(GateInputError, match="a candidate is needed"):
        check(base)
    with pytest.raises(GateInputError, match="--tolerance must be"):
        check(base, base, tolerance_override=-1)


# --- harness check on tables (seed means) ---------------------------------------------------


def test_check_baseline_against_itself_is_inconclusive_on_seed_means(baseline: Path) -> None:
    # the same numbers on both sides, but two runs' seed means cannot rule out a drop of 0.05
    # when each side's interval is +-0.13: the gate says it cannot tell (exit 3)
    result = invoke("check", "--baseline", str(baseline), "--candidate", str(baseline))
    assert result.exit_code == 3, result.output
    assert "tolerance 0.050 from baseline suite.json" in result.stdout
    assert "inconclusive: no regression shown" in result.stdout
    assert "INCONCLUSIVE dpo: winrate.gold +0.000 (0.650 -> 0.650)" in result.stdout
    assert "a half-width of 0.050 would decide it" in result.stdout
    assert "warning" not in result.stdout  # same provenance


def test_check_worse_candidate_exits_1_naming_the_metric(baseline: Path, tmp_path: Path) -> None:
    candidate = _worse(baseline, tmp_path, "dpo", "winrate.gold", 0.3)
    result = invoke("check", "--baseline", str(baseline), "--candidate", str(candidate))
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("REGRESSION")]
    assert len(lines) == 1
    # d = -0.3; two seeds a side (t on 2 df, Welch) and the runs' own intervals: high < 0
    assert "dpo: winrate.gold -0.300 (0.650 -> 0.350), 95% interval [-0.428, -0.172]" in lines[0]
    assert "dropped 0.300, beyond the tolerance 0.050" in lines[0]
    assert result.stdout.splitlines()[-1].startswith("regression:")


def test_check_results_dir_and_csv_inputs(baseline: Path, tmp_path: Path) -> None:
    candidate = _worse(baseline, tmp_path, "dpo", "capability_delta.tiny_facts", 0.3)
    pd.read_parquet(candidate).to_csv(tmp_path / "candidate.csv", index=False)
    result = invoke(
        "check", "--baseline", str(baseline.parent), "--candidate", str(tmp_path / "candidate.csv")
    )
    assert result.exit_code == 1, result.output
    assert "REGRESSION dpo: capability_delta.tiny_facts -0.300" in result.stdout


def test_check_variant_against_another_within_one_table(baseline: Path) -> None:
    args = ["check", "--baseline", str(baseline)]
    result = invoke(*args, "--variant", "sft", "--against", "dpo")
    assert result.exit_code == 1, result.output
    # heldout: 0.650 -> 0.495, d = -0.155: two seeds a side (t on Welch's 2 degrees of freedom)
    # and the runs' own intervals stay below 0
    assert (
        "REGRESSION sft vs dpo: winrate.heldout -0.155 (0.650 -> 0.495), 95% interval"
        " [-0.288, -0.022]" in result.stdout
    )
    # a capability delta of +0.02 whose interval reaches beyond the tolerance: undecided
    assert "INCONCLUSIVE sft vs dpo: capability_delta.tiny_arith +0.020" in result.stdout
    assert 'under test: sft: method "dpo" vs "sft"' in result.stdout
    result = invoke(*args, "--variant", "dpo", "--against", "sft")
    assert result.exit_code == 3, result.output  # gains, but intervals too wide to rule out drops


def test_check_fails_when_the_candidate_variant_failed(baseline: Path, tmp_path: Path) -> None:
    results = [r for r in make_results() if r.variant != "ppo" or r.seed != 0]
    out = write_results_dir(tmp_path / "cand", results)
    result = invoke("check", "--baseline", str(baseline), "--candidate", str(out))
    assert result.exit_code == 1, result.output
    assert "MISSING ppo: winrate.gold is in the baseline but missing from the candidate" in (
        result.stdout
    )


def test_output_to_a_pipe_is_plain_lines_that_never_cut_a_number(baseline: Path) -> None:
    app = typer.Typer()
    register(app)
    args = ["check", "--baseline", str(baseline), "--variant", "sft", "--against", "dpo"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "40"})  # a narrow "terminal"
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("variant"))
    assert header.split() == [
        "variant", "metric", "baseline", "candidate", "diff", "95%", "interval", "basis", "verdict"
    ]  # fmt: skip
    assert "sft vs dpo  winrate.proxy" in result.stdout
    assert "[-0.389, -0.031]" in result.stdout  # whole, on one line
    assert "…" not in result.stdout and "─" not in result.stdout


def _bad_inputs(baseline: Path, tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"PAR1 but not really")
    other = pd.read_parquet(baseline).assign(variant=lambda d: "new-" + d["variant"])
    other.to_parquet(tmp_path / "other.parquet", index=False)
    renamed = pd.read_parquet(baseline).assign(suite="hh")
    renamed.to_parquet(tmp_path / "hh.parquet", index=False)
    b = ["--baseline", str(baseline)]
    return {
        "missing file": ([*b, "--candidate", str(tmp_path / "nope.parquet")], "no such file"),
        "unreadable": ([*b, "--candidate", str(garbage)], "unreadable table"),
        "no common variants": (
            [*b, "--candidate", str(tmp_path / "other.parquet")],
            "no common variants: baseline has sft, dpo, ppo; candidate has new-sft, new-dpo",
        ),
        "mismatched suites": (
            [*b, "--candidate", str(tmp_path / "hh.parquet")],
            "mismatched suites: baseline is golden, candidate is hh",
        ),
        "unknown variant": (
            [*b, "--variant", "dpo-v2", "--against", "dpo"],
            "variant 'dpo-v2' not found in the candidate (has: sft, dpo, ppo)",
        ),
        "unknown against": ([*b, "--variant", "dpo", "--against", "rrhf"], "variant 'rrhf' not"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing file",
        "unreadable",
        "no common variants",
        "mismatched suites",
        "unknown variant",
        "unknown against",
    ],
)
def test_check_bad_input_exits_2(baseline: Path, tmp_path: Path, case: str) -> None:
    args, message = _bad_inputs(baseline, tmp_path)[case]
    result = invoke("check", *args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_check_across_suites_with_variant_and_against(baseline: Path, tmp_path: Path) -> None:
    renamed = pd.read_parquet(baseline).assign(suite="hh")
    renamed.to_parquet(tmp_path / "hh.parquet", index=False)
    args = ["--baseline", str(baseline), "--candidate", str(tmp_path / "hh.parquet")]
    result = invoke("check", *args, "--variant", "dpo", "--against", "dpo", "--tolerance", "0.5")
    assert result.exit_code == 0, result.output
    assert "pass: no drop beyond 0.500 in 5 comparisons over 1 variant(s)" in result.stdout


# --- harness check on samples (paired, hierarchical) -----------------------------------------

# 3 seeds x 200 prompts x 4 samples; "same" is drawn like "base", "worse" is shifted down by
# 0.6 score units (about -0.17 in win-rate against the reference)
DESIGN = {"seeds": (0, 1, 2), "n_prompts": 200, "n_clusters": 10, "k": 4, "seed_sd": 0.0}
SHIFTS = {"base": 0.0, "same": 0.0, "worse": -0.6}


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sampled_dir(tmp_path_factory.mktemp("gate"), SHIFTS, **DESIGN)


def _rows(out: str) -> dict[str, list[str]]:
    """metric -> the cells of its verdict line (plain output)."""
    return {
        line.split()[1 if " vs " not in line else 3]: line.split()
        for line in out.splitlines()
        if "winrate." in line and not line.startswith(("REGRESSION", "INCONCLUSIVE", "power:"))
    }


def test_samples_pass_exits_0(sampled: Path) -> None:
    result = invoke("check", "--baseline", str(sampled), "--variant", "same", "--against", "base")
    assert result.exit_code == 0, result.output
    rows = _rows(result.stdout)
    assert set(rows) == {"winrate.proxy", "winrate.gold"}
    assert all(" ".join(r[-3:-1]) == "paired samples" and r[-1] == "pass" for r in rows.values())
    assert "capability_delta.t" in result.stdout  # still on seed means: no samples for it
    verdict = check(sampled, None, "same", "base")
    gold = next(r for r in verdict.rows if r.metric == "winrate.gold")
    assert gold.ci_low > -0.05 and gold.ci_high - gold.ci_low < 0.08


def test_samples_regression_exits_1(sampled: Path) -> None:
    result = invoke("check", "--baseline", str(sampled), "--variant", "worse", "--against", "base")
    assert result.exit_code == 1, result.output
    regressions = [line for line in result.stdout.splitlines() if line.startswith("REGRESSION")]
    assert len(regressions) == 2 and all("(paired samples)" in line for line in regressions)
    verdict = check(sampled, None, "worse", "base")
    for row in verdict.regressions:
        assert -0.25 < row.diff < -0.1 and row.ci_high < 0


def test_samples_inconclusive_exits_3_with_the_half_width_that_decides(sampled: Path) -> None:
    # the same comparison as the pass, at a tolerance its interval is too wide for
    args = ["--baseline", str(sampled), "--variant", "same", "--against", "base"]
    result = invoke("check", *args, "--tolerance", "0.005")
    assert result.exit_code == 3, result.output
    verdict = check(sampled, None, "same", "base", tolerance_override=0.005)
    undecided = verdict.inconclusive
    assert undecided and not verdict.regressions
    for row in undecided:
        assert row.ci_low < -0.005 < row.ci_high
        assert f"a half-width of {row.diff + 0.005:.3f} would decide it" in result.stdout


def test_two_results_dirs_with_one_reference_are_paired(sampled: Path, tmp_path: Path) -> None:
    # another suite run of the same world (same reference samples): "base" is the new "same"
    other = write_sampled_dir(tmp_path, {"base": 0.0}, rng_seed=0, **DESIGN)
    verdict = check(sampled, other, variant="base")
    wins = [r for r in verdict.rows if r.metric.startswith("winrate.")]
    assert {r.basis for r in wins} == {"paired samples"}
    # a dir drawn from another reference is compared unpaired (two bootstraps)
    unrelated = write_sampled_dir(tmp_path / "u", {"base": 0.0}, rng_seed=5, **DESIGN)
    verdict = check(sampled, unrelated, variant="base")
    assert {r.basis for r in verdict.rows if r.metric.startswith("winrate.")} == {"samples"}
    # a table file on either side: seed means, with the prompt level the table stored
    verdict = check(sampled / "table.parquet", other, variant="base")
    assert {r.basis for r in verdict.rows if r.metric.startswith("winrate.")} == {
        "seed means + variance components"
    }


def test_provenance_that_differs_is_named_under_the_verdict(sampled: Path, tmp_path: Path) -> None:
    packages = {"torch": "2.11", "transformers": "5.0"}  # transformers as in the baseline
    elsewhere = {**PROVENANCE, "host": "other-box", "packages": packages}
    other = write_sampled_dir(tmp_path, {"base": 0.0}, provenance=elsewhere, **DESIGN)
    args = ["--baseline", str(sampled), "--candidate", str(other), "--variant", "base"]
    lines = invoke("check", *args).stdout.splitlines()
    warning = next(i for i, line in enumerate(lines) if line.startswith("warning:"))
    assert lines[warning - 1].rstrip().endswith(("pass", "inconclusive", "regression"))
    text = " ".join(lines[warning:])
    assert "host box vs other-box" in text and "torch 2.10 vs 2.11" in text
    assert "transformers" not in text and "device" not in text  # the same on both sides
    assert "--variant NEW --against OLD" in text
    same = invoke("check", "--baseline", str(sampled), "--variant", "same", "--against", "base")
    assert "warning" not in same.stdout


def test_a_shipped_baseline_pairs_a_one_seed_candidate_that_borrows_its_seeds(
    sampled: Path, tmp_path: Path
) -> None:
    """``ship_baseline`` puts the samples beside the table, where ``harness check`` finds them:
    a one-seed candidate is paired on the prompts and borrows the baseline's between-run
    variance, says so, lists its seeds as under test (no warning) and prints its power."""
    written = ship_baseline(sampled, tmp_path / "baselines" / "tiny")
    assert {p.name for p in written} == {
        "tiny.parquet", "tiny.runs.parquet", "tiny.samples.parquet",
        "tiny.reference_samples.parquet", "tiny.suite.json",
    }  # fmt: skip
    table = tmp_path / "baselines" / "tiny.parquet"
    cand = write_sampled_dir(tmp_path, {"base": 0.0}, rng_seed=0, **{**DESIGN, "seeds": (0,)})
    verdict = check(table, cand, variant="base")
    wins = [r for r in verdict.rows if r.metric.startswith("winrate.")]
    assert {r.basis for r in wins} == {"paired samples"}
    assert {r.seed_level for r in wins} == {"borrowed from the baseline's seeds"}
    assert verdict.under_test == ["base: seeds 0-2 vs 0"] and not verdict.differences
    args = ["--baseline", str(table), "--candidate", str(cand), "--variant", "base"]
    result = invoke("check", *args)
    assert "warning" not in result.stdout, result.output
    assert "under test: base: seeds 0-2 vs 0" in result.stdout
    assert "power: base winrate.gold: a drop of" in result.stdout
    assert "(1 candidate seed(s) against 3, 200 prompts;" in " ".join(result.stdout.split())
    # a changed parameter of the variant under test is listed with it, not warned of
    suite = json.loads((cand / "suite.json").read_text())
    suite["methods"][0]["params"] = {"beta": 0.2}
    (cand / "suite.json").write_text(json.dumps(suite))
    result = invoke("check", *args)
    assert "under test: base: params.beta - vs 0.2" in result.stdout, result.output
    assert "warning" not in result.stdout


def test_settings_travel_in_the_table_so_a_bare_candidate_is_checked(
    sampled: Path, tmp_path: Path
) -> None:
    """A candidate made at other evaluation settings (128 prompts) is refused (exit 2) though no
    suite.json travels with its table: the table's footer holds its settings."""
    cand = write_sampled_dir(tmp_path, {"base": 0.0}, rng_seed=0, **DESIGN)
    suite = json.loads((cand / "suite.json").read_text())
    suite["eval"]["num_prompts"] = 128
    (cand / "suite.json").write_text(json.dumps(suite))
    write_tables(cand, load_results(cand))
    bare = tmp_path / "bare.parquet"
    bare.write_bytes((cand / "table.parquet").read_bytes())
    result = invoke(
        "check", "--baseline", str(sampled), "--candidate", str(bare), "--variant", "base"
    )
    assert result.exit_code == 2, result.output
    assert "eval.num_prompts - vs 128" in result.output

"""The regression gate: the rule by hand, `harness check` exit codes and messages."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from harness.cli_results import register
from harness.gate import GateInputError, check
from harness.results import write_tables
from harness.tables import long_table
from tests.test_results import SUITE_JSON, load_results, make_results, write_results_dir


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


# --- the rule ---------------------------------------------------------------------------------


def _table(rows: list[tuple[str, int, str, float, float, float]], suite: str = "s") -> pd.DataFrame:
    columns = ["variant", "seed", "metric", "value", "ci_low", "ci_high"]
    df = pd.DataFrame(rows, columns=columns)
    return df.assign(suite=suite, run_id=df["variant"] + df["seed"].astype(str), method="m", n=100)


def test_drop_beyond_tolerance_that_the_interval_supports_is_a_regression() -> None:
    base = _table([("a", 0, "winrate.gold", 0.70, 0.62, 0.78)])
    # drop 0.10 > 0.05 and the candidate's upper bound 0.68 < 0.70
    verdict = check(base, _table([("a", 0, "winrate.gold", 0.60, 0.52, 0.68)]))
    assert [r.status for r in verdict.rows] == ["regression"]
    assert verdict.rows[0].drop == pytest.approx(0.10) and not verdict.passed
    # same drop, but the candidate's interval reaches the baseline mean: not supported
    verdict = check(base, _table([("a", 0, "winrate.gold", 0.60, 0.45, 0.75)]))
    assert [r.status for r in verdict.rows] == ["ok"] and verdict.passed
    # a drop within the tolerance is fine however tight the interval
    verdict = check(base, _table([("a", 0, "winrate.gold", 0.66, 0.655, 0.665)]))
    assert verdict.passed and verdict.tolerance == 0.05 and verdict.tolerance_source == "default"


def test_a_drop_exactly_at_the_tolerance_passes_despite_float_error() -> None:
    base = _table([("a", 0, "winrate.gold", 0.80, 0.72, 0.88)])
    cand = _table([("a", 0, "winrate.gold", 0.70, 0.69, 0.71)])
    assert 0.80 - 0.70 > 0.1  # 0.10000000000000009 in floats
    verdict = check(base, cand, tolerance_override=0.1)
    assert verdict.passed and [r.status for r in verdict.rows] == ["ok"]
    assert not check(base, cand, tolerance_override=0.0999).passed


def test_tolerance_override_and_missing_metrics() -> None:
    base = _table([("a", 0, "winrate.gold", 0.70, 0.62, 0.78), ("a", 0, "kl", 3.0, 2.0, 4.0)])
    base = pd.concat([base, _table([("a", 0, "capability_delta.x", -0.01, -0.05, 0.03)])])
    cand = _table([("a", 0, "winrate.gold", 0.60, 0.52, 0.68), ("a", 0, "kl", 9.0, 8.0, 10.0)])
    verdict = check(base, cand, tolerance_override=0.2)
    statuses = {r.metric: r.status for r in verdict.rows}
    assert statuses == {"winrate.gold": "ok", "capability_delta.x": "missing"}  # kl is not gated
    assert [r.metric for r in verdict.rows] == ["winrate.gold", "capability_delta.x"]
    assert not verdict.passed and math.isnan(verdict.missing[0].candidate)
    assert verdict.tolerance_source == "--tolerance"


def test_tolerance_comes_from_the_suite(baseline: Path, tmp_path: Path) -> None:
    suite = {**SUITE_JSON, "eval": {**SUITE_JSON["eval"], "lm_eval": {"tolerance": 0.3}}}
    (baseline.parent / "suite.json").write_text(json.dumps(suite))
    verdict = check(baseline, _worse(baseline, tmp_path, "dpo", "winrate.gold", 0.2))
    assert verdict.passed and verdict.tolerance == 0.3
    assert verdict.tolerance_source == "baseline suite.json"


def test_frame_of_the_verdict(baseline: Path) -> None:
    frame = check(baseline, baseline).to_frame()
    assert list(frame.columns)[:3] == ["variant", "against", "metric"]
    assert set(frame["status"]) == {"ok"} and set(frame["variant"]) == {"sft", "dpo", "ppo"}
    assert len(frame) == 3 * (3 + 2)  # 3 variants x (3 judges + 2 tasks)


def test_bad_arguments() -> None:
    base = long_table(make_results())
    with pytest.raises(GateInputError, match="--against needs --variant"):
        check(base, base, against="dpo")
    with pytest.raises(GateInputError, match="a candidate is needed"):
        check(base)
    with pytest.raises(GateInputError, match="--tolerance must be"):
        check(base, base, tolerance_override=-1)


# --- harness check ----------------------------------------------------------------------------


def test_check_baseline_against_itself_exits_0(baseline: Path) -> None:
    result = invoke("check", "--baseline", str(baseline), "--candidate", str(baseline))
    assert result.exit_code == 0, result.output
    assert "ok: no regression beyond 0.050 in 15 comparisons over 3 variant(s)" in result.stdout
    assert "tolerance 0.050 from baseline suite.json" in result.stdout


def test_check_worse_candidate_exits_1_naming_the_metric(baseline: Path, tmp_path: Path) -> None:
    candidate = _worse(baseline, tmp_path, "dpo", "winrate.gold", 0.2)
    result = invoke("check", "--baseline", str(baseline), "--candidate", str(candidate))
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("REGRESSION")]
    assert len(lines) == 1
    assert "dpo: winrate.gold dropped 0.200 (0.650 -> 0.450)" in lines[0]
    assert "beyond the tolerance 0.050" in lines[0]


def test_check_results_dir_and_csv_inputs(baseline: Path, tmp_path: Path) -> None:
    candidate = _worse(baseline, tmp_path, "ppo", "capability_delta.tiny_facts", 0.1)
    pd.read_parquet(candidate).to_csv(tmp_path / "candidate.csv", index=False)
    result = invoke(
        "check", "--baseline", str(baseline.parent), "--candidate", str(tmp_path / "candidate.csv")
    )
    assert result.exit_code == 1, result.output
    assert "ppo: capability_delta.tiny_facts dropped 0.100" in result.stdout


def test_check_variant_against_another_within_one_table(baseline: Path) -> None:
    args = ["check", "--baseline", str(baseline)]
    result = invoke(*args, "--variant", "sft", "--against", "dpo")
    assert result.exit_code == 1, result.output
    # proxy: 0.720 -> 0.510, sft's interval [0.383, 0.637] lies below 0.720: a regression
    assert "REGRESSION sft vs dpo: winrate.proxy dropped 0.210" in result.stdout
    # gold: 0.650 -> 0.495 is beyond the tolerance, but sft's interval reaches 0.686: not shown
    assert "winrate.gold dropped" not in result.stdout
    result = invoke(*args, "--variant", "dpo", "--against", "sft")
    assert result.exit_code == 0, result.output


def test_check_fails_when_the_candidate_variant_failed(baseline: Path, tmp_path: Path) -> None:
    results = [r for r in make_results() if r.variant != "ppo" or r.seed != 0]
    out = write_results_dir(tmp_path / "cand", results)
    result = invoke("check", "--baseline", str(baseline), "--candidate", str(out))
    assert result.exit_code == 1, result.output
    assert "MISSING ppo: winrate.gold is in the baseline but missing from the candidate" in (
        result.stdout
    )


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
    result = invoke("check", *args, "--variant", "dpo", "--against", "dpo")
    assert result.exit_code == 0, result.output

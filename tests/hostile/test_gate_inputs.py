"""Inputs built to fool `harness check`: runs that mostly failed, one seed's rows repeated as
more seeds, intervals that exclude their own value or are not numbers, and bare tables whose
settings cannot be checked. Each is refused (exit 2, the file and the row or key named) or
flagged under the verdict so that it is never a silent pass."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from harness.cli.results import register
from harness.report.gate import GateInputError, Verdict, VerdictRow, check
from harness.report.gate_inputs import check_unique, settings_unknown, unfinished_runs
from harness.report.results import write_tables
from harness.suite.runs import MetricRow, RunResult
from tests.sampled import PROVENANCE, suite_json, write_sampled_dir

SUITE = "hostile"
SEEDS = tuple(range(8))
# win-rates of the eight baseline seeds: mean 0.65, a narrow t-interval over seeds
RATES = (0.64, 0.65, 0.66, 0.65, 0.64, 0.66, 0.65, 0.65)
ERROR = "FloatingPointError: dpo diverged at round 1, step 2: loss is nan.\nLower the lr"


def invoke(*args: str):
    app = typer.Typer()
    register(app)
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def run(
    variant: str, seed: int, rate: float = 0.65, failed: bool = False, half: float = 0.02
) -> RunResult:
    """A run of ``variant``: a win-rate +-``half`` and a capability delta of 0 +-0.01, or
    failed."""
    metrics = [
        MetricRow("winrate.gold", rate, rate - half, rate + half, 100),
        MetricRow("capability_delta.t", 0.0, -0.01, 0.01, 100),
    ]
    return RunResult(
        run_id=f"{variant}-{seed}".ljust(16, "0"),
        suite=SUITE,
        variant=variant,
        method="dpo",
        seed=seed,
        status="failed" if failed else "done",
        metrics=[] if failed else metrics,
        provenance=dict(PROVENANCE),
        error=ERROR if failed else None,
    )


def results_dir(root: Path, results: list[RunResult], suite: bool = True) -> Path:
    """``root/hostile`` with its tables (``table.parquet``, ``runs.parquet``) and, unless
    ``suite`` is False, its ``suite.json``."""
    out = root / SUITE
    out.mkdir(parents=True)
    if suite:
        variants = list(dict.fromkeys(r.variant for r in results))
        seeds = sorted({r.seed for r in results})
        (out / "suite.json").write_text(json.dumps(suite_json(SUITE, variants, seeds)))
    write_tables(out, results)
    return out


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    """Eight finished seeds of ``dpo`` at a win-rate of 0.65."""
    runs = [run("dpo", s, r) for s, r in zip(SEEDS, RATES, strict=True)]
    return results_dir(tmp_path / "base", runs)


def mostly_failed(root: Path, rate: float = 0.65) -> Path:
    """Eight seeds of ``dpo``: seed 0 finished at ``rate``, seeds 1 to 7 failed (listed so in
    ``runs.parquet``)."""
    return results_dir(root, [run("dpo", s, rate, failed=s > 0) for s in SEEDS])


def edit_table(path: Path, edit) -> Path:
    """Rewrite the table (parquet) at ``path`` as ``edit`` returns it; returns ``path``."""
    edit(pd.read_parquet(path)).to_parquet(path, index=False)
    return path


def refused(result, *names: str) -> str:
    """The one-line error of an exit 2, after checking that it names each of ``names``."""
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    for name in names:
        assert name in result.stderr, (name, result.stderr)
    return result.stderr


# --- runs that did not finish ----------------------------------------------------------------


def test_a_candidate_whose_runs_mostly_failed_is_inconclusive_and_named(
    baseline: Path, tmp_path: Path
) -> None:
    """7 of 8 candidate seeds failed and the one that finished matches the baseline: every
    metric passes on its own, but the verdict is inconclusive (exit 3) and the output names the
    failed seeds, their error and the run table they are listed in."""
    candidate = mostly_failed(tmp_path / "cand")
    verdict = check(baseline, candidate)
    assert {r.status for r in verdict.rows} == {"pass"}
    assert verdict.overall == "inconclusive" and not verdict.passed
    result = invoke("check", "--baseline", str(baseline), "--candidate", str(candidate))
    assert result.exit_code == 3, result.output
    line = next(x for x in result.stdout.splitlines() if x.startswith("UNFINISHED"))
    assert "candidate" in line and "7 of 8 runs of dpo did not finish" in line
    assert "seeds 1, 2, 3, 4, 5, 6, 7 failed: FloatingPointError: dpo diverged" in line
    assert str(candidate / "runs.parquet") in " ".join(result.stdout.split())
    assert "rest on the 1 that did" in line
    assert result.stdout.splitlines()[-1].startswith("inconclusive: no drop beyond 0.050 shown")


def test_failed_runs_of_the_baseline_are_named_too(baseline: Path, tmp_path: Path) -> None:
    """Failed baseline runs make a comparison that would pass inconclusive (exit 3), named as
    the baseline's; the candidate, all finished, gets no such line."""
    failing = mostly_failed(tmp_path / "base2")
    result = invoke("check", "--baseline", str(failing), "--candidate", str(baseline))
    assert result.exit_code == 3, result.output
    lines = [x for x in result.stdout.splitlines() if x.startswith("UNFINISHED")]
    assert len(lines) == 1 and lines[0].startswith("UNFINISHED baseline")


def test_failed_runs_do_not_hide_a_regression(baseline: Path, tmp_path: Path) -> None:
    """A candidate that mostly failed and whose one finished seed dropped far is still a
    regression (exit 1), with its failed runs named."""
    candidate = mostly_failed(tmp_path / "cand", rate=0.30)
    result = invoke("check", "--baseline", str(baseline), "--candidate", str(candidate))
    assert result.exit_code == 1, result.output
    assert "REGRESSION dpo: winrate.gold" in result.stdout
    assert "UNFINISHED candidate" in result.stdout


def test_runs_done_but_without_rows_are_unfinished(baseline: Path, tmp_path: Path) -> None:
    """Seeds deleted from the candidate's table while its run table says they finished (the bad
    seeds cut out) make the verdict inconclusive, naming those seeds."""
    candidate = results_dir(tmp_path / "cand", [run("dpo", s) for s in SEEDS])
    edit_table(candidate / "table.parquet", lambda df: df[df["seed"] == 0])
    verdict = check(baseline, candidate)
    assert verdict.overall == "inconclusive"
    assert len(verdict.unfinished) == 1
    assert "seeds 1, 2, 3, 4, 5, 6, 7 done but without rows in the table" in verdict.unfinished[0]


def test_unfinished_runs_line_by_hand() -> None:
    """``unfinished_runs`` says nothing without a run table or when every run finished, and
    otherwise counts the runs that did not finish per status, with the first line of an error."""
    long = pd.DataFrame({"variant": ["a", "a"], "seed": [0, 1]})
    runs = pd.DataFrame(
        {
            "variant": ["a", "a", "a", "b"],
            "seed": [0, 1, 2, 0],
            "status": ["done", "done", "failed", "failed"],
            "error": [None, None, "OOM\ntrace", "x"],
        }
    )
    assert unfinished_runs("candidate t", long, None, "a", "r") is None
    assert unfinished_runs("candidate t", long, runs[runs["seed"] < 2], "a", "r") is None
    line = unfinished_runs("candidate t", long, runs, "a", "runs.parquet")
    assert line == (
        "candidate t: 1 of 3 runs of a did not finish (seed 2 failed: OOM; runs.parquet):"
        " its numbers rest on the 2 that did"
    )
    # a run without a status (a hand-made run table) did not finish either
    runs.loc[1, "status"] = None
    line = unfinished_runs("candidate t", long, runs, "a", "runs.parquet")
    assert line is not None and "2 of 3 runs of a" in line and "seed 1 without a status" in line


def test_overall_verdict_with_unfinished_runs_is_never_pass() -> None:
    """A verdict whose every metric passes is inconclusive when runs did not finish, and stays a
    regression when a metric regressed."""
    row = VerdictRow("a", "a", "winrate.gold", 0.6, 0.6, 0.0, -0.01, 0.01, 0.05, "pass", "s")
    assert Verdict([row], 0.05, "default").overall == "pass"
    assert Verdict([row], 0.05, "default", unfinished=["x"]).overall == "inconclusive"
    worse = replace(row, status="regression")
    assert Verdict([row, worse], 0.05, "default", unfinished=["x"]).overall == "regression"


# --- repeated rows ---------------------------------------------------------------------------


def test_one_seed_repeated_as_eight_rows_is_refused(baseline: Path, tmp_path: Path) -> None:
    """One candidate seed's rows repeated eight times would count as eight seeds with no spread
    (turning an inconclusive verdict into a pass): exit 2, naming the table and the repeated
    key."""
    candidate = results_dir(tmp_path / "cand", [run("dpo", 0, half=0.1)])
    before = invoke("check", "--baseline", str(baseline), "--candidate", str(candidate))
    assert before.exit_code == 3, before.output  # one seed's interval +-0.1: cannot decide
    table = edit_table(candidate / "table.parquet", lambda df: pd.concat([df] * 8))
    result = invoke("check", "--baseline", str(baseline), "--candidate", str(candidate))
    refused(result, f"candidate {table}", "variant dpo, seed 0, metric", "is in 8 rows")


def test_rows_copied_under_other_seed_numbers_are_refused(baseline: Path, tmp_path: Path) -> None:
    """One run's rows copied under seeds 1 to 7 (the same run_id) are refused (exit 2), naming
    the run and the seeds it appears under."""
    candidate = results_dir(tmp_path / "cand", [run("dpo", 0)])
    table = candidate / "table.parquet"
    edit_table(table, lambda df: pd.concat([df.assign(seed=s) for s in SEEDS]))
    result = invoke("check", "--baseline", str(baseline), "--candidate", str(candidate))
    refused(result, str(table), "run dpo-0", "dpo seed 0, dpo seed 1", "copied rows")


def test_a_run_twice_in_the_run_table_is_refused(baseline: Path, tmp_path: Path) -> None:
    """A (variant, seed) in two rows of the baseline's run table is refused (exit 2), naming
    runs.parquet and the key."""
    runs = baseline / "runs.parquet"
    edit_table(runs, lambda df: pd.concat([df, df[df["seed"] == 3]]))
    result = invoke("check", "--baseline", str(baseline), "--variant", "dpo")
    refused(result, f"baseline {runs}", "variant dpo, seed 3 is in 2 rows")


def test_check_unique_names_the_first_repeated_key() -> None:
    """``check_unique`` passes distinct keys and names where and which key repeats."""
    table = pd.DataFrame({"variant": ["a", "a", "b", "b"], "seed": [0, 1, 0, 0]})
    check_unique(table.head(3), ("variant", "seed"), "t.parquet")
    with pytest.raises(GateInputError, match=r"^t\.parquet: variant b, seed 0 is in 2 rows"):
        check_unique(table, ("variant", "seed"), "t.parquet")


# samples: 2 seeds x 12 prompts x 2 samples, two variants drawn alike
SAMPLED = {"seeds": (0, 1), "n_prompts": 12, "n_clusters": 3, "k": 2}


@pytest.fixture
def sampled(tmp_path: Path) -> Path:
    return write_sampled_dir(tmp_path, {"base": 0.0, "same": 0.0}, **SAMPLED)


def test_repeated_samples_are_refused(sampled: Path) -> None:
    """A seed's samples repeated in samples.parquet would count as more samples: exit 2,
    naming the file and the (variant, seed, prompt_id, sample) repeated."""
    args = ["check", "--baseline", str(sampled), "--variant", "same", "--against", "base"]
    assert invoke(*args).exit_code in (0, 3)  # a verdict before the edit
    file = sampled / "samples.parquet"
    edit_table(file, lambda df: pd.concat([df, df[(df["variant"] == "same") & (df["seed"] == 1)]]))
    refused(invoke(*args), str(file), "variant same, seed 1, prompt_id 0, sample 0 is in 2 rows")


def test_repeated_or_missing_reference_samples_are_refused(sampled: Path) -> None:
    """A reference sample in two rows, or a reference score that is not a number, is refused
    (exit 2) naming reference_samples.parquet."""
    args = ["check", "--baseline", str(sampled), "--variant", "same", "--against", "base"]
    file = sampled / "reference_samples.parquet"
    original = pd.read_parquet(file)
    edit_table(file, lambda df: pd.concat([df, df.head(1)]))
    refused(invoke(*args), str(file), "prompt_id 0, sample 0 is in 2 rows")
    original.assign(**{"score.gold": original["score.gold"].mask(original.index == 5)}).to_parquet(
        file, index=False
    )
    refused(invoke(*args), str(file), "score.gold of prompt_id 2, sample 1 is nan")


def test_an_infinite_sample_score_is_refused(sampled: Path) -> None:
    """A sample scored +inf (it would win every pair) is refused (exit 2), naming the file,
    the judge and the sample."""
    file = sampled / "samples.parquet"

    def infinite(df: pd.DataFrame) -> pd.DataFrame:
        return df.assign(**{"score.proxy": df["score.proxy"].mask(df.index == 0, math.inf)})

    edit_table(file, infinite)
    args = ["check", "--baseline", str(sampled), "--variant", "same", "--against", "base"]
    refused(invoke(*args), str(file), "score.proxy of variant base, seed 0", "is inf")


# --- intervals and numbers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "said"),
    [
        ("ci_low", 0.70, "value 0.65 outside its own interval [0.7, 0.67]"),
        ("ci_high", 0.60, "value 0.65 outside its own interval [0.63, 0.6]"),
    ],
)
def test_an_interval_that_excludes_its_value_is_refused(
    baseline: Path, tmp_path: Path, column: str, value: float, said: str
) -> None:
    """An interval that excludes its own point estimate is refused (exit 2) naming the file,
    metric, variant and seed, with the numbers."""
    candidate = results_dir(tmp_path / "cand", [run("dpo", s) for s in SEEDS])

    def skew(df: pd.DataFrame) -> pd.DataFrame:
        rows = (df["seed"] == 4) & (df["metric"] == "winrate.gold")
        df.loc[rows, column] = value
        return df

    table = edit_table(candidate / "table.parquet", skew)
    result = invoke("check", "--baseline", str(baseline), "--candidate", str(candidate))
    refused(result, f"candidate {table}", "winrate.gold of dpo (seed 4)", said)


def test_an_end_within_float_error_of_the_value_is_accepted(baseline: Path, tmp_path: Path) -> None:
    """An interval end off its value by float error only (1e-12) is not an excluded value."""
    candidate = results_dir(tmp_path / "cand", [run("dpo", s) for s in SEEDS])

    def touch(df: pd.DataFrame) -> pd.DataFrame:
        return df.assign(ci_low=df["value"] + 1e-12)

    edit_table(candidate / "table.parquet", touch)
    assert check(baseline, candidate).overall in ("pass", "inconclusive")


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        ({"value": math.nan}, "has value nan, where a number is needed"),
        ({"value": math.inf}, "has value inf, outside [0, 1]"),
        ({"ci_high": math.nan}, "has ci_low 0.63 but no ci_high: an interval needs both ends"),
        ({"ci_low": -math.inf}, "has ci_low -inf, outside [-1, 2]"),
    ],
)
def test_numbers_that_are_not_numbers_are_refused(
    baseline: Path, tmp_path: Path, edit: dict[str, float], said: str
) -> None:
    """A NaN or infinite value, or an interval with one end missing or infinite, is refused
    (exit 2) naming the file and the row."""
    candidate = results_dir(tmp_path / "cand", [run("dpo", s) for s in SEEDS])

    def spoil(df: pd.DataFrame) -> pd.DataFrame:
        rows = (df["seed"] == 2) & (df["metric"] == "winrate.gold")
        for column, value in edit.items():
            df.loc[rows, column] = value
        return df

    table = edit_table(candidate / "table.parquet", spoil)
    result = invoke("check", "--baseline", str(baseline), "--candidate", str(candidate))
    refused(result, f"candidate {table}", "winrate.gold of dpo (seed 2)", said)


def test_a_single_seed_without_interval_is_refused(baseline: Path, tmp_path: Path) -> None:
    """The only seed of a metric with no interval would be taken as exact (and pass): exit 2.
    With several seeds the interval comes from the seeds, so missing per-row intervals are fine."""
    one = results_dir(tmp_path / "one", [run("dpo", 0)])
    edit_table(one / "table.parquet", lambda df: df.assign(ci_low=math.nan, ci_high=math.nan))
    result = invoke("check", "--baseline", str(baseline), "--candidate", str(one))
    refused(result, "of dpo (seed 0) is the only seed", "no interval")
    many = results_dir(tmp_path / "many", [run("dpo", s) for s in SEEDS])
    edit_table(many / "table.parquet", lambda df: df.assign(ci_low=math.nan, ci_high=math.nan))
    assert check(baseline, many).overall in ("pass", "inconclusive")


# --- settings that cannot be checked ---------------------------------------------------------


def test_a_bare_table_gets_the_settings_warning(baseline: Path, tmp_path: Path) -> None:
    """A candidate table with no suite.json and no run table beside it, written without the
    settings a table stores (rewritten by pandas): the verdict is given (a pass, exit 0) with a
    warning under it that the comparison's settings cannot be checked, naming the bare table;
    the same table with its suite.json gets no warning, and so does the table as written, whose
    settings travel in its footer."""
    bare = tmp_path / "bare.parquet"
    pd.read_parquet(baseline / "table.parquet").to_parquet(bare, index=False)
    result = invoke("check", "--baseline", str(baseline), "--candidate", str(bare))
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "warning: the settings of the comparison cannot be checked" in text
    assert f"candidate {bare} has no suite.json beside it and no suite hash" in text
    (tmp_path / "bare.suite.json").write_text((baseline / "suite.json").read_text())
    result = invoke("check", "--baseline", str(baseline), "--candidate", str(bare))
    assert result.exit_code == 0 and "warning" not in result.stdout, result.output
    stored = tmp_path / "stored.parquet"
    stored.write_bytes((baseline / "table.parquet").read_bytes())
    result = invoke("check", "--baseline", str(baseline), "--candidate", str(stored))
    assert result.exit_code == 0 and "warning" not in result.stdout, result.output


def test_settings_unknown_by_hand() -> None:
    """Settings are checked when both sides have a suite.json or both a suite hash; otherwise
    each side without a suite.json is named."""
    suite = {"name": "s"}
    assert settings_unknown([("b", suite, None), ("c", suite, None)]) == []
    assert settings_unknown([("b", None, "h1"), ("c", None, "h2")]) == []
    assert settings_unknown([("b", suite, None), ("c", None, None)]) == [
        "c has no suite.json beside it and no suite hash"
    ]
    assert settings_unknown([("b", suite, None), ("c", None, "h")]) == [
        "c has no suite.json beside it (only a suite hash, which the other side lacks)"
    ]

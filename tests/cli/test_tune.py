"""``harness tune``: per method the swept learning rate with the best held-out win-rate, never
gold's; a judge that may not select, or none, is bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli.main import app
from harness.cli.tune import TuneError, choose, selection_judge
from harness.suite.runs import MetricRow, RunResult

# (variant, method, lr) -> (heldout, gold) win-rates of seeds 0 and 1: held-out prefers dpo at
# 2e-4 and raft at 1e-4, gold the other way round
TRIALS = {
    ("dpo-lr1e-4", "dpo", 1e-4): ((0.55, 0.57), (0.70, 0.72)),
    ("dpo-lr2e-4", "dpo", 2e-4): ((0.60, 0.62), (0.60, 0.62)),
    ("raft-lr1e-4", "raft", 1e-4): ((0.58, 0.60), (0.50, 0.52)),
    ("raft-lr2e-4", "raft", 2e-4): ((0.52, 0.54), (0.65, 0.67)),
}


def tuning_dir(root: Path, judges: list[str] | None = None) -> Path:
    out = root / "tune"
    (out / "runs").mkdir(parents=True)
    methods = [{"name": v, "method": m, "params": {"lr": lr}} for v, m, lr in TRIALS]
    suite = {"name": "tune", "seeds": [0, 1], "methods": methods}
    suite["eval"] = {"judges": judges or ["heldout", "proxy", "gold"], "primary_judge": "heldout"}
    (out / "suite.json").write_text(json.dumps(suite))
    for (variant, method, _), (heldout, gold) in TRIALS.items():
        for seed in (0, 1):
            metrics = [MetricRow("winrate.heldout", heldout[seed], n=32)]
            metrics += [MetricRow("winrate.gold", gold[seed], n=32)]
            run_id = f"{variant}{seed}".replace("-", "").ljust(16, "0")[:16]
            result = RunResult(run_id, "tune", variant, method, seed, "done", metrics=metrics)
            (out / "runs" / f"{run_id}.json").write_text(result.to_json())
    return out


def test_each_method_gets_the_rate_the_held_out_judge_prefers(tmp_path: Path) -> None:
    judge, choices = choose(tuning_dir(tmp_path), "lr", None)
    assert judge == "heldout"
    best = {c.method: (c.best.value, c.best.mean) for c in choices}
    assert best == {"dpo": (2e-4, pytest.approx(0.61)), "raft": (1e-4, pytest.approx(0.59))}
    assert all(len(c.trials) == 2 and c.best.seeds == 2 for c in choices)
    assert all(c.other_differences == [] for c in choices)


def test_the_command_prints_the_choice(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["tune", str(tuning_dir(tmp_path))], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "by heldout win-rate" in result.stdout
    dpo = next(line for line in result.stdout.splitlines() if line.startswith("dpo"))
    assert "0.0002" in dpo.split()[1] and "0.610" in dpo
    assert "0.0001: 0.560" in dpo  # every trial is shown
    assert "warning" not in result.stdout


@pytest.mark.parametrize("judge", ["gold", "proxy"])
def test_gold_and_proxy_never_select(tmp_path: Path, judge: str) -> None:
    result = CliRunner().invoke(app, ["tune", str(tuning_dir(tmp_path)), "--judge", judge])
    assert result.exit_code == 2
    assert "selects on a held-out judge" in result.stderr


def test_without_a_held_out_judge_there_is_no_choice() -> None:
    with pytest.raises(TuneError, match="no held-out judge"):
        selection_judge(["proxy", "gold"], None)
    assert selection_judge(["proxy", "ultra", "gold"], None) == "ultra"


def test_not_a_results_dir(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["tune", str(tmp_path)])
    assert result.exit_code == 2 and "no suite.json" in result.stderr

"""The commands that train nothing never import torch: ``--help``, ``validate``, ``methods``,
``leaderboard`` and ``check`` run in a fresh interpreter, each followed by a look at
``sys.modules``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.report.test_results import write_results_dir

HEAVY = ("torch", "ray", "transformers", "lm_eval", "vllm", "peft")

PROBE = """
import json, sys
from typer.testing import CliRunner
from harness.cli import app
result = CliRunner().invoke(app, json.loads(sys.argv[1]))
heavy = sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)
print(json.dumps({"exit": result.exit_code, "heavy": heavy, "output": result.output[-2000:]}))
"""


def probe(args: list[str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_results_dir(tmp_path_factory.mktemp("torch-free"))


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["validate", "suites/tiny.yaml"],
        ["validate", "suites/hh.yaml"],
        ["methods"],
    ],
    ids=["help", "validate-tiny", "validate-hh", "methods"],
)
def test_commands_that_train_nothing_import_no_torch(args: list[str]) -> None:
    out = probe(args)
    assert out["exit"] == 0, out["output"]
    assert out["heavy"] == [], f"{' '.join(args)} imported {out['heavy']}"


def test_leaderboard_and_check_import_no_torch(results_dir: Path) -> None:
    for args in (
        ["leaderboard", str(results_dir)],
        ["check", "--baseline", str(results_dir), "--candidate", str(results_dir)],
    ):
        out = probe(args)
        assert out["exit"] in (0, 1, 3), out["output"]  # a table, or a verdict
        assert out["heavy"] == [], f"{args[0]} imported {out['heavy']}"

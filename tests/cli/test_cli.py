"""The command line: `harness validate` exit codes and output, `harness methods`, `--version`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import harness
from harness.cli.main import app
from methods import REGISTRY
from methods.rrhf import RRHFParams

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "suites" / "tiny.yaml")
BROKEN = sorted((Path(__file__).parents[1] / "suites").glob("*.yaml"))


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def fields_expected(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    return [
        line.removeprefix("# expect:").split("|")[0].strip()
        for line in lines
        if "# expect:" in line
    ]


def test_tiny_suite_validates() -> None:
    result = invoke("validate", TINY)
    assert result.exit_code == 0, result.output
    assert "suite tiny" in result.stdout
    assert "runs:     8 variants x 8 seeds = 64" in result.stdout
    for name in list(REGISTRY)[:8]:  # the default suite's eight (suites/zoo.yaml has them all)
        assert name in result.stdout
    assert result.stderr == ""


def test_overrides_change_what_is_validated() -> None:
    result = invoke("validate", TINY, "-o", "methods.rrhf.params.rank_weight=2", "-o", "seeds=[0]")
    assert result.exit_code == 0, result.output
    assert "rank_weight=2.0" in result.stdout
    assert "8 variants x 1 seeds = 8" in result.stdout


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_suite_exits_2_naming_fields(path: Path) -> None:
    result = invoke("validate", str(path))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "invalid suite" in result.stderr
    for field in fields_expected(path):
        assert f"{path}: {field}: " in result.stderr
    assert "Traceback" not in result.output


def test_every_issue_line_has_file_field_given_and_expected() -> None:
    result = invoke("validate", TINY, "-o", "methods.rrhf.params.beta=0.1", "-o", "budget.rounds=0")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()[1:]
    rrhf_params = ", ".join(RRHFParams.model_fields)
    assert lines == [
        f"  {TINY}: methods[3](rrhf).params.beta: unknown key (parameters of rrhf: {rrhf_params})"
        " (given: 0.1)",
        f"  {TINY}: budget.rounds: Input should be greater than 0 (given: 0)",
    ]


def test_unknown_method_says_did_you_mean() -> None:
    result = invoke("validate", TINY, "-o", "methods.dpo.method=rrfh")
    assert result.exit_code == 2
    assert "methods[6].method: unknown method 'rrfh'; did you mean 'rrhf'?" in result.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seeds", "an override is key=value"),
        ("methods.rrfh.params.lr=1", "no item named 'rrfh' in 'methods'; did you mean 'rrhf'?"),
    ],
)
def test_bad_override_exits_2(override: str, message: str) -> None:
    result = invoke("validate", TINY, "-o", override)
    assert result.exit_code == 2
    assert "(override)" in result.stderr and message in result.stderr
    assert repr(override) in result.stderr


def test_missing_suite_file_exits_2(tmp_path: Path) -> None:
    result = invoke("validate", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "file not found" in result.stderr


def test_traceback_only_with_debug() -> None:
    quiet = invoke("validate", TINY, "-o", "budget.rounds=0")
    loud = invoke("validate", TINY, "-o", "budget.rounds=0", "--debug")
    assert quiet.exit_code == loud.exit_code == 2
    assert "Traceback" not in quiet.output
    assert "Traceback" in loud.stderr and "SuiteError" in loud.stderr


def test_internal_error_is_short_without_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("harness.cli.main.load_suite", broken)
    result = invoke("validate", TINY)
    assert result.exit_code == 1
    assert "internal error: RuntimeError: boom" in result.stderr
    assert "Traceback" not in result.output


def test_methods_lists_every_method_with_defaults() -> None:
    result = invoke("methods")
    assert result.exit_code == 0, result.output
    for name, method in REGISTRY.items():
        assert name in result.stdout
        assert method.description[:30] in result.stdout
    assert "beta=0.1" in result.stdout  # DPO's default
    assert "n=8" in result.stdout  # best-of-N's default


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert harness.__version__ in result.stdout


def test_usage_error_exits_2() -> None:
    result = invoke("validate")
    assert result.exit_code == 2
    assert "Missing argument" in result.stderr

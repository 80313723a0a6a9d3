"""The conformance kit: a conforming method passes every check; each deliberately broken one
(``broken_methods``) fails the check naming what it broke, and only that one."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ConfigDict, Field

from harness.testing import CHECKS, check_method, check_params
from methods.base import MethodParams
from tests.testing import broken_methods


@pytest.fixture(autouse=True)
def world(tiny_world: Path) -> Path:  # the kit trains on the tiny world, in the tests' cache
    return tiny_world


@pytest.mark.parametrize("name", ["rloo", "kto"])
def test_a_conforming_method_passes_every_check(name: str) -> None:
    report = check_method(name)
    assert [c.name for c in report.checks] == list(CHECKS)
    assert report.ok, report.summary()
    assert report["moves"].passed and report["seeded"].passed and report["lora"].passed


def test_a_method_that_trains_nothing_has_only_its_params_checked() -> None:
    report = check_method("sft")
    assert report.ok
    assert report["params"].passed is True
    assert {c.passed for c in report.checks[1:]} == {None}


@pytest.mark.parametrize(
    ("method", "fails", "says"),
    [
        # with LoRA its reference is the policy's base weights: it changes them too
        (broken_methods.TRAIN_REFERENCE, ["reference", "lora"], "the reference changed"),
        (broken_methods.OVERSPEND, ["budget"], "samples"),
        (broken_methods.GREEDY, ["decoding"], "(0.0, 1.0, 8)"),
        (broken_methods.UNSEEDED, ["seeded"], "differ between two seed-0 runs"),
    ],
    ids=["trains-its-reference", "overspends", "samples-greedily", "unseeded"],
)
def test_a_broken_method_fails_the_check_naming_its_fault(
    method: broken_methods.Inline, fails: list[str], says: str
) -> None:
    report = check_method(method)
    assert not report.ok
    assert report.failed == fails, report.summary()
    assert says in report[fails[0]].detail


class Undocumented(MethodParams):
    lr: float = 1e-3
    beta: float = Field(0.1, description="Documented.")


class Loose(MethodParams):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def test_params_must_be_strict_typed_and_documented() -> None:
    check = check_params(Undocumented)
    assert check.passed is False and "without a description: lr" in check.detail
    assert check_params(Loose).passed is False
    assert check_params(dict).passed is False
    assert check_params(broken_methods.DPOParams).passed is True


def test_the_cli_prints_the_table_and_exits_by_the_verdict() -> None:
    from typer.testing import CliRunner

    from harness.cli import app

    result = CliRunner().invoke(app, ["method-check", "simpo", "sft"])
    assert result.exit_code == 0, result.output
    assert "simpo: passes" in result.stdout and "sft: passes" in result.stdout
    for name in CHECKS:
        assert name in result.stdout
    unknown = CliRunner().invoke(app, ["method-check", "simpoo"])
    assert unknown.exit_code == 2
    assert "Did you mean 'simpo'" in unknown.stderr

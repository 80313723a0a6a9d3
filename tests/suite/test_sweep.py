"""``sweep:`` in a suite: one variant per value, or per combination, with valid unique names;
every mistake names the sweep's field; ``harness validate`` lists the variants it makes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli.main import app
from harness.suite.loader import SuiteError, load_suite
from harness.suite.sweep import _name_issues, expand_methods

BASE = {
    "name": "swept",
    "world": {"seed": 0},
    "budget": {"prompts_per_round": 4, "rounds": 1, "samples_per_prompt": 2, "max_new_tokens": 8},
    "seeds": [0],
    "eval": {"judges": ["proxy", "gold"]},
}


def suite_file(tmp_path: Path, methods: list[dict]) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({**BASE, "methods": methods}, sort_keys=False))
    return path


def test_one_variant_per_value_with_the_explicit_params(tmp_path: Path) -> None:
    methods = [
        {"method": "sft"},
        {"method": "dpo", "params": {"lr": 2e-4}, "sweep": {"beta": [0.05, 0.1, 0.5]}},
    ]
    suite = load_suite(suite_file(tmp_path, methods))
    names = [v.name for v in suite.methods]
    assert names == ["sft", "dpo-beta0p05", "dpo-beta0p1", "dpo-beta0p5"]
    swept = suite.methods[1:]
    assert [v.params.beta for v in swept] == [0.05, 0.1, 0.5]  # type: ignore[attr-defined]
    assert all(v.params.lr == 2e-4 and v.method == "dpo" for v in swept)  # type: ignore[attr-defined]


def test_two_parameters_give_their_product_named_after_the_variant(tmp_path: Path) -> None:
    sweep = {"lr": [1e-4, 2e-4], "beta": [0.04, 0.1], "group_size": [4, 8]}
    methods = [{"name": "g", "method": "grpo", "sweep": sweep}]
    suite = load_suite(suite_file(tmp_path, methods))
    names = [v.name for v in suite.methods]
    assert len(names) == len(set(names)) == 8
    assert names[:3] == [
        "g-lr1e-4-beta0p04-group_size4",
        "g-lr1e-4-beta0p04-group_size8",
        "g-lr1e-4-beta0p1-group_size4",
    ]
    combos = {(v.params.lr, v.params.beta, v.params.group_size) for v in suite.methods}  # type: ignore[attr-defined]
    assert len(combos) == 8


def test_word_values_and_overrides_of_the_sweep(tmp_path: Path) -> None:
    methods = [{"method": "dpo", "sweep": {"pairs": ["offline", "online"]}}]
    path = suite_file(tmp_path, methods)
    assert [v.name for v in load_suite(path).methods] == ["dpo-pairs-offline", "dpo-pairs-online"]
    # an override reaches the sweep as written, before it is expanded
    suite = load_suite(path, ["methods.dpo.sweep.pairs=[online]"])
    assert [v.name for v in suite.methods] == ["dpo-pairs-online"]


def test_a_swept_suite_dumps_and_validates_again_as_the_same_suite(tmp_path: Path) -> None:
    suite = load_suite(suite_file(tmp_path, [{"method": "raft", "sweep": {"lr": [1e-4, 4e-4]}}]))
    again = type(suite).model_validate(suite.model_dump(mode="json"))
    assert again == suite and again.hash() == suite.hash()


@pytest.mark.parametrize(
    ("sweep", "field", "message"),
    [
        (
            {"bta": [0.1]},
            "methods[0](dpo).sweep.bta",
            "dpo has no parameter 'bta'; did you mean 'beta'?",
        ),
        ({"beta": [0.1, 0.1]}, "methods[0](dpo).sweep.beta[1]", "duplicate value"),
        ({"beta": 0.1}, "methods[0](dpo).sweep.beta", "a non-empty list of values"),
        ({"beta": ["x"]}, "methods[0](dpo).sweep.beta[0]", "valid number"),
        ([0.1], "methods[0](dpo).sweep", "a mapping of parameters"),
        ({"lr": [1e-4, 0.0001]}, "methods[0](dpo).sweep.lr[1]", "duplicate value"),
    ],
)
def test_mistakes_name_the_sweep_field(
    tmp_path: Path, sweep: object, field: str, message: str
) -> None:
    with pytest.raises(SuiteError) as caught:
        load_suite(suite_file(tmp_path, [{"method": "dpo", "sweep": sweep}]))
    found = [(e.field, e.expected) for e in caught.value.errors]
    assert any(f == field and message in m for f, m in found), found


def test_names_that_come_out_alike_or_too_long_are_errors() -> None:
    # distinct values render to distinct names (shortest exact digits), so only the rule is left
    # to check: two names alike are an error, as is one that is not a name
    loc = ("methods", 0, "dpo", "sweep")
    assert _name_issues(loc, ["a-x1", "a-x1"]) == [
        (loc, "a-x1", "two values give this one variant name")
    ]
    assert "invalid variant name" in _name_issues(loc, ["A-x1"])[0][2]
    long = {"methods": [{"name": "x" * 60, "method": "dpo", "sweep": {"beta": [0.1]}}]}
    _, issues = expand_methods(long, 1000)
    assert "longer than 64" in issues[0][2]
    many = {"methods": [{"method": "dpo", "sweep": {"beta": [0.1, 0.2], "lr": [1e-4, 2e-4]}}]}
    assert expand_methods(many, 3)[1] == [(("methods",), 4, "sweeps give more than 3")]
    assert expand_methods({"methods": [{"method": "sft"}]}, 3) == (
        {"methods": [{"method": "sft"}]},
        [],
    )


def test_validate_lists_the_expanded_variants(tmp_path: Path) -> None:
    path = suite_file(
        tmp_path, [{"method": "sft"}, {"method": "dpo", "sweep": {"beta": [0.05, 0.5]}}]
    )
    result = CliRunner().invoke(app, ["validate", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "variants: 3" in result.stdout
    assert "dpo-beta0p05" in result.stdout and "beta=0.05" in result.stdout
    assert "3 variants x 1 seeds = 3" in result.stdout

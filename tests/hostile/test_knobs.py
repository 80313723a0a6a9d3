"""Every knob of a suite typed and bounded: the world's sizes, the methods' rates and counts, YAML
1.1 numbers and booleans, and overrides that change one variant only. Each bad input ends in a
``SuiteError`` (exit 2 from the command line) naming the field, with no traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from harness.cli.main import app
from harness.suite.loader import SpecIssue, SuiteError, apply_override, load_suite
from harness.world.config import WorldConfig
from tests.hostile.cases import suite_text


def issues_of(tmp_path: Path, text: str, overrides: tuple[str, ...] = ()) -> list[SpecIssue]:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    with pytest.raises(SuiteError) as caught:
        load_suite(path, overrides)
    return caught.value.errors


def the_issue(tmp_path: Path, text: str, overrides: tuple[str, ...] = ()) -> SpecIssue:
    (issue,) = issues_of(tmp_path, text, overrides)
    return issue


# --- the world -----------------------------------------------------------------------------------


def test_the_default_world_is_unchanged() -> None:
    """The shipped world is keyed by the default config: its fields and key stay as they were."""
    assert WorldConfig().key() == "1b8406da442c"
    assert WorldConfig.model_validate({"seed": 0}) == WorldConfig()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("layers", "'2'"),
        ("layers", "true"),
        ("hidden_size", "64.0"),
        ("sft_dialogues", "'8000'"),
        ("rm_label_noise", "'0.1'"),
        ("rm_label_noise", ".nan"),
        ("seed", "false"),
    ],
)
def test_world_fields_are_strict(tmp_path: Path, field: str, value: str) -> None:
    """A string, a boolean or a float for a world int (or a string or NaN for its float) is
    refused, naming world.<field>."""
    issue = the_issue(tmp_path, suite_text(world=f"world: {{{field}: {value}}}"))
    assert issue.field == f"world.{field}"


@pytest.mark.parametrize(
    ("field", "value", "most"),
    [
        ("layers", 1_000_000, "8"),
        ("hidden_size", 2**20, "512"),
        ("heads", 4096, "16"),
        ("vocab_size", 10**9, "8192"),
        ("sft_dialogues", 10**12, "64000"),
        ("rm_pairs", 10**9, "16000"),
        ("train_prompts", 10**9, "8192"),
        ("seed", 2**64, "4294967295"),
    ],
)
def test_world_sizes_are_bounded(tmp_path: Path, field: str, value: int, most: str) -> None:
    """A world size far beyond a laptop's (a million layers...) is refused, naming the field and
    its upper bound."""
    issue = the_issue(tmp_path, suite_text(world=f"world: {{{field}: {value}}}"))
    assert issue.field == f"world.{field}"
    assert most in issue.expected


def test_world_width_must_split_into_heads(tmp_path: Path) -> None:
    """A hidden size that does not split into even-width heads is refused before any build."""
    issue = the_issue(tmp_path, suite_text(world="world: {hidden_size: 66, heads: 4}"))
    assert issue.field == "world"
    assert "hidden_size (66)" in issue.expected and "4 heads" in issue.expected


# --- method params -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "param", "value"),
    [
        ("grpo", "group_size", "1000000000"),
        ("grpo", "lr", "1.0e+15"),
        ("dpo", "beta", "1.0e+12"),
        ("ppo", "horizon", "10000000000000"),
        ("ppo", "max_grad_norm", "1.0e+300"),
        ("ppo", "cliprange", "1.0e+6"),
        ("rrhf", "length_penalty", "1000"),
        ("pro", "sft_weight", "1.0e+9"),
        ("best_of_n", "n", "1000000000"),
    ],
)
def test_method_params_are_bounded(tmp_path: Path, method: str, param: str, value: str) -> None:
    """A method parameter far beyond any plan (GRPO's group_size of 1e9, a learning rate of 1e15)
    is refused, naming methods[0](<method>).params.<param> and the bound."""
    text = suite_text(methods=f"methods: [{{method: {method}, params: {{{param}: {value}}}}}]")
    issue = the_issue(tmp_path, text)
    assert issue.field == f"methods[0]({method}).params.{param}"
    assert "less than or equal" in issue.expected


def test_swept_params_are_bounded(tmp_path: Path) -> None:
    """A swept value beyond its parameter's bound is refused like a set one, naming the value."""
    text = suite_text(methods="methods: [{method: grpo, sweep: {group_size: [4, 1000000000]}}]")
    issue = the_issue(tmp_path, text)
    assert issue.field == "methods[0](grpo).sweep.group_size[1]"
    assert "less than or equal to 1024" in issue.expected


# --- YAML 1.1 numbers and booleans ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("part", "field", "hint"),
    [
        ("budget", "budget.rounds", "1:30 is a YAML 1.1 sexagesimal number (90); write 90"),
        ("seeds", "seeds[0]", "010 is 8 in YAML 1.1 (octal), 10 in YAML 1.2; write 8 or 10"),
        ("budget", "budget.max_new_tokens", "1_000 is a YAML 1.1 number (1000); write 1000"),
        ("methods", "methods[0](ppo).params.whiten_advantages", "yes is a YAML 1.1 boolean"),
        ("methods", "methods[0](raft).params.train_prompt_tokens", "off is a YAML 1.1 boolean"),
    ],
)
def test_yaml_11_forms_are_refused_with_what_to_write(
    tmp_path: Path, part: str, field: str, hint: str
) -> None:
    """YAML 1.1's sexagesimal, octal, underscored numbers and yes/no/on/off booleans are text
    to a suite (YAML 1.2): in a number or boolean field they are refused, naming the field and
    the text, and saying what to write."""
    texts = {
        "budget.rounds": "budget: {prompts_per_round: 2, rounds: 1:30, samples_per_prompt: 2, "
        "max_new_tokens: 8}",
        "seeds[0]": "seeds: [010]",
        "budget.max_new_tokens": "budget: {prompts_per_round: 2, rounds: 1, samples_per_prompt: 2, "
        "max_new_tokens: 1_000}",
        "methods[0](ppo).params.whiten_advantages": "methods: [{method: ppo, params: "
        "{whiten_advantages: yes}}]",
        "methods[0](raft).params.train_prompt_tokens": "methods: [{method: raft, params: "
        "{train_prompt_tokens: off}}]",
    }
    issue = the_issue(tmp_path, suite_text(**{part: texts[field]}))
    assert issue.field == field
    assert hint in issue.expected


def test_yaml_12_numbers_and_text_read_as_written(tmp_path: Path) -> None:
    """YAML 1.2 forms read as such: 0o10 is 8, 0x10 is 16, 1e-4 a float, and `no` a string
    where a string is expected (a variant named `no`, not False)."""
    text = suite_text(
        methods="methods: [{name: no, method: dpo, params: {lr: 1e-4, batch_size: 0o10}}]",
        seeds="seeds: [0x10]",
    )
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    suite = load_suite(path)
    assert suite.methods[0].name == "no" and suite.seeds == [16]
    assert suite.methods[0].params.model_dump()["batch_size"] == 8
    assert suite.methods[0].params.model_dump()["lr"] == 1e-4


def test_yaml_11_override_is_refused_naming_the_field(tmp_path: Path) -> None:
    """An override reads its value as the file does: `budget.rounds=1:30` is refused, naming
    budget.rounds and what to write."""
    issue = the_issue(tmp_path, suite_text(), ("budget.rounds=1:30",))
    assert issue.field == "budget.rounds"
    assert "write 90" in issue.expected


# --- overrides and anchors -----------------------------------------------------------------------


ANCHORED = suite_text(
    methods="""methods:
  - {name: a, method: dpo, params: &p {beta: 0.1}}
  - {name: b, method: dpo, params: *p}"""
)


def test_override_of_an_anchored_value_changes_one_variant(tmp_path: Path) -> None:
    """Two variants share `params` through a YAML anchor: an override of one variant's params
    leaves the other's as written."""
    path = tmp_path / "suite.yaml"
    path.write_text(ANCHORED)
    suite = load_suite(path, ["methods.a.params.beta=0.5"])
    betas = {v.name: v.params.model_dump()["beta"] for v in suite.methods}
    assert betas == {"a": 0.5, "b": 0.1}


def test_override_through_shared_lists_changes_one_place() -> None:
    """Every mapping and list on an override's path is copied before it changes: values shared
    by aliases (a list of mappings here) keep what they held everywhere else."""
    shared = [{"beta": 0.1}]
    raw: dict[str, Any] = {"a": {"x": shared}, "b": {"x": shared}}
    apply_override(raw, "a.x.0.beta=0.5")
    assert raw["a"]["x"] == [{"beta": 0.5}]
    assert raw["b"]["x"] == [{"beta": 0.1}] and shared == [{"beta": 0.1}]


def test_cli_exits_2_naming_the_bounded_field(tmp_path: Path) -> None:
    """From the command line, an unbounded knob ends in exit 2 naming the field, no traceback."""
    path = tmp_path / "suite.yaml"
    path.write_text(suite_text(world="world: {layers: 100000}"))
    result = CliRunner().invoke(app, ["validate", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "world.layers" in result.stderr and "less than or equal to 8" in result.stderr
    assert "Traceback" not in result.output

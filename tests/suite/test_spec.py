"""The suite schema: the tiny suite loads, every broken suite names its field, overrides work."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from harness.suite.loader import SpecIssue, SuiteError, apply_override, load_suite
from harness.suite.schema import Suite
from methods import REGISTRY
from methods.dpo import DPOParams
from methods.rrhf import RRHFParams

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "suites" / "tiny.yaml"
BROKEN = sorted((Path(__file__).parents[1] / "suites").glob("*.yaml"))


def expectations(path: Path) -> list[tuple[str, str]]:
    """The ``# expect: <field> | <message part>`` lines at the top of a broken suite."""
    lines = path.read_text().splitlines()
    pairs = [line.removeprefix("# expect:").split("|", 1) for line in lines if "# expect:" in line]
    here = str(path.parent.resolve())
    return [(f.strip(), m.strip().replace("{here}", here)) for f, m in pairs]


def issues_of(path: Path | str, overrides: tuple[str, ...] = ()) -> list[SpecIssue]:
    with pytest.raises(SuiteError) as caught:
        load_suite(path, overrides)
    return caught.value.errors


def write(tmp_path: Path, doc: dict | str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def hub_suite() -> dict:
    return {
        "name": "hub",
        "models": {
            "policy": {"path": "org/policy", "dtype": "bfloat16"},
            "reward": {"path": "org/rm"},
            "judges": {"ultra": {"path": "org/judge"}},
        },
        "data": {
            "train_prompts": {"source": "hub", "path": "Anthropic/hh-rlhf"},
            "eval_prompts": {"source": "hub", "path": "Anthropic/hh-rlhf", "split": "test"},
        },
        "methods": [{"method": "dpo"}],
        "budget": {
            "prompts_per_round": 8,
            "rounds": 1,
            "samples_per_prompt": 2,
            "max_new_tokens": 16,
        },
        "seeds": [0],
        "eval": {"judges": ["proxy", "ultra"]},
    }


# --- the tiny suite -------------------------------------------------------------------------------


def test_tiny_suite_loads_with_every_method() -> None:
    suite = load_suite(TINY)
    assert suite.name == "tiny"
    assert suite.world is not None and suite.models is None
    assert [v.method for v in suite.methods] == list(REGISTRY)[:8]  # zoo.yaml has every one
    assert suite.seeds == list(range(8))
    assert suite.eval.judges == ["proxy", "heldout", "gold"]
    assert suite.eval.primary_judge == "gold"
    assert suite.eval.lm_eval.tasks == ["tiny_facts", "tiny_arith", "tiny_text"]
    assert suite.eval.decoding.max_new_tokens == suite.budget.max_new_tokens == 48
    assert suite.data.eval_prompts.split == "eval"


def test_variant_params_are_the_methods_own_models() -> None:
    suite = load_suite(TINY)
    dpo = suite.variant("dpo")
    assert isinstance(dpo.params, DPOParams)
    assert dpo.params.lr == pytest.approx(2e-4)
    assert dpo.params.beta == 0.1  # the paper default
    assert isinstance(suite.variant("rrhf").params, RRHFParams)
    with pytest.raises(KeyError, match="no variant 'nope'"):
        suite.variant("nope")


def test_dump_round_trips() -> None:
    suite = load_suite(TINY)
    again = Suite.model_validate(suite.model_dump())
    assert again == suite
    assert again.hash() == suite.hash()


def test_hash_is_stable_and_follows_content() -> None:
    first, second = load_suite(TINY), load_suite(TINY)
    assert first.hash() == second.hash()
    assert len(first.hash()) == 64
    assert load_suite(TINY, ["seeds=[0]"]).hash() != first.hash()
    assert load_suite(TINY, ["methods.dpo.params.beta=0.2"]).hash() != first.hash()


def test_world_suite_defaults_its_data_to_the_world_splits(tmp_path: Path) -> None:
    doc = yaml.safe_load(TINY.read_text())
    del doc["data"], doc["eval"]["primary_judge"]
    suite = load_suite(write(tmp_path, doc))
    assert suite.data == load_suite(TINY).data
    assert suite.eval.primary_judge == "heldout"  # the first non-proxy judge


def test_hub_suite_defaults(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, hub_suite()))
    assert suite.models is not None
    assert suite.models.reference == suite.models.policy
    assert suite.eval.primary_judge == "ultra"
    assert suite.eval.lm_eval.tasks == []
    assert suite.data.preferences is None
    assert suite.variant("dpo").name == "dpo"


def test_relative_file_paths_resolve_against_the_suite_file(tmp_path, monkeypatch) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "prompts.jsonl").write_text('{"prompt": "hi"}\n')
    doc = hub_suite()
    doc["data"]["train_prompts"] = {
        "source": "file",
        "path": "data/prompts.jsonl",
        "format": "prompt",
    }
    path = write(tmp_path, doc)
    monkeypatch.chdir(ROOT)
    suite = load_suite(path)
    assert suite.data.train_prompts.path == str(tmp_path.resolve() / "data" / "prompts.jsonl")


# --- broken suites --------------------------------------------------------------------------------


def test_there_are_many_broken_suites() -> None:
    assert len(BROKEN) >= 20


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_suite_names_each_field(path: Path) -> None:
    issues = issues_of(path)
    expected = expectations(path)
    assert expected, f"{path.name} has no '# expect:' line"
    for field, message in expected:
        hits = [i for i in issues if i.field == field and message in i.expected]
        assert hits, f"no issue at {field!r} saying {message!r}; got:\n" + "\n".join(
            map(str, issues)
        )
    assert all(i.file == str(path) for i in issues)


def test_several_errors_are_all_listed() -> None:
    path = Path(__file__).parents[1] / "suites" / "several_errors.yaml"
    assert len(issues_of(path)) == 4


def test_missing_suite_file(tmp_path: Path) -> None:
    [issue] = issues_of(tmp_path / "nope.yaml")
    assert issue.expected == "file not found"


def test_unknown_method_suggests_the_closest() -> None:
    [issue] = issues_of(TINY, ("methods.ppo.method=grop",))
    assert issue.field == "methods[2].method"
    assert "did you mean 'grpo'?" in issue.expected


def test_error_message_is_one_line_per_issue(tmp_path: Path) -> None:
    with pytest.raises(SuiteError) as caught:
        load_suite(TINY, ["budget.rounds=0", "seeds=[]"])
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{TINY}: budget.rounds: ")


def test_model_validate_enforces_cross_field_rules() -> None:
    doc = load_suite(TINY).model_dump()
    doc["eval"]["judges"] = ["proxy", "ultra"]
    doc["eval"]["primary_judge"] = "ultra"
    with pytest.raises(ValidationError, match="unknown judge"):
        Suite.model_validate(doc)


# --- overrides ------------------------------------------------------------------------------------


def test_overrides_by_name_index_and_whole_values() -> None:
    suite = load_suite(
        TINY,
        [
            "methods.rrhf.params.rank_weight=2",
            "methods.0.name=base",
            "seeds=[0]",
            "eval.lm_eval.tasks=[]",
            "methods.dpo.params.lr=1e-4",  # YAML 1.1 would read this as a string
        ],
    )
    assert suite.variant("rrhf").params.rank_weight == 2.0
    assert suite.methods[0].name == "base"
    assert suite.seeds == [0]
    assert suite.eval.lm_eval.tasks == []
    assert suite.variant("dpo").params.lr == pytest.approx(1e-4)


def test_override_may_create_keys_that_validation_then_checks() -> None:
    [issue] = issues_of(TINY, ("methods.raft.params.temperature=2",))
    assert issue.field == "methods[4](raft).params.temperature"
    assert "unknown key" in issue.expected
    suite = load_suite(TINY, ["resources.address=auto"])
    assert suite.resources.address == "auto"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seeds", "an override is key=value"),
        ("=3", "an override is key=value"),
        ("methods.rrfh.params.lr=1", "no item named 'rrfh' in 'methods'; did you mean 'rrhf'?"),
        ("methods.12.params.lr=1", "index 12 out of range"),
        ("name.first=x", "'name' is 'tiny', not a mapping or list"),
        ("seeds=[0, 1", "value is not valid YAML"),
    ],
)
def test_bad_override_is_named(override: str, message: str) -> None:
    issues = issues_of(TINY, (override,))
    assert [i.given for i in issues] == [repr(override)]
    assert message in issues[0].expected


def test_bad_override_is_reported_beside_schema_errors() -> None:
    issues = issues_of(TINY, ("oops", "budget.rounds=-1"))
    assert [i.field for i in issues] == ["oops", "budget.rounds"]


def test_apply_override_edits_in_place() -> None:
    raw: dict = {"methods": [{"method": "dpo", "params": {}}, {"name": "x", "method": "dpo"}]}
    raw["empty"] = None  # `empty:` in YAML
    apply_override(raw, "methods.x.params.beta=0.5")
    apply_override(raw, "methods.dpo.params.beta=0.2")
    apply_override(raw, "methods.-1.params.epochs=2")
    apply_override(raw, "new.key=1")
    apply_override(raw, "empty.key=a=b")
    assert raw["methods"][0]["params"] == {"beta": 0.2}
    assert raw["methods"][1]["params"] == {"beta": 0.5, "epochs": 2}
    assert raw["new"] == {"key": 1}
    assert raw["empty"] == {"key": "a=b"}


def test_world_sources_read_the_world_files_formats() -> None:
    data = load_suite(TINY).data
    assert (data.train_prompts.format, data.eval_prompts.format) == ("prompt", "prompt")
    assert data.preferences is not None and data.preferences.format == "hh"

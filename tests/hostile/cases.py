"""A corpus of hostile inputs: suites, overrides, data files, --out, results folders and gate
tables, each expected to end in exit 2 with the field or file named and no traceback.

Each case builds its inputs in a fresh folder and returns the ``harness`` arguments; ``expect``
is the text that names the field or file. ``tests/test_hostile.py`` runs them in-process;
``python -m tests.hostile.measure --tree DIR`` runs them as separate processes (with a time and
memory limit) against the harness in ``DIR``, to compare two versions.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "suites" / "tiny.yaml")

Setup = Callable[[Path], list[str]]


@dataclass(frozen=True)
class Case:
    kind: str  # suite | override | data | out | results | gate
    id: str
    setup: Setup
    expect: str  # names the field or file


BASE = {
    "name": "name: hostile",
    "world": "world: {seed: 0}",
    "data": "",
    "methods": "methods: [{method: sft}]",
    "budget": "budget: {prompts_per_round: 2, rounds: 1, samples_per_prompt: 2, max_new_tokens: 8}",
    "train": "",
    "seeds": "seeds: [0]",
    "eval": "eval: {judges: [proxy]}",
    "resources": "",
}


def suite_text(**parts: str) -> str:
    """The base suite with some top-level entries replaced (given as YAML lines)."""
    return "\n".join(v for v in {**BASE, **parts}.values() if v) + "\n"


def validate(text: str | bytes, files: dict[str, bytes] | None = None) -> Setup:
    def setup(tmp: Path) -> list[str]:
        for name, content in (files or {}).items():
            (tmp / name).write_bytes(content)
        path = tmp / "suite.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return ["validate", str(path)]

    return setup


# --- suites ---------------------------------------------------------------------------------------

BOMB = "bomb: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"b{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
)


def _suite(id: str, expect: str, **parts: str) -> Case:
    return Case("suite", id, validate(suite_text(**parts)), expect)


def _params(id: str, method: str, params: str, expect: str) -> Case:
    return _suite(id, expect, methods=f"methods: [{{method: {method}, params: {{{params}}}}}]")


def _loop(tmp: Path) -> list[str]:
    (tmp / "loop.jsonl").symlink_to(tmp / "loop.jsonl")
    data = "{train_prompts: {source: file, path: loop.jsonl, format: prompt}, "
    data += "eval_prompts: {source: world}}"
    return validate(suite_text(data=f"data: {data}"))(tmp)


def _suite_loop(tmp: Path) -> list[str]:
    (tmp / "suite.yaml").symlink_to(tmp / "suite.yaml")
    return ["validate", str(tmp / "suite.yaml")]


def _file_data(path: str) -> str:
    return (
        f"data: {{train_prompts: {{source: file, path: '{path}', format: prompt}},"
        " eval_prompts: {source: world}}"
    )


SUITES = [
    Case("suite", "alias_bomb", validate(suite_text() + BOMB), "line"),
    _suite("complex_key", "line", name="name: hostile\n? [a, b]\n: 1"),
    _suite("deep_nesting", "nested", resources="x: " + "[" * 3000 + "]" * 3000),
    Case("suite", "not_utf8", validate(suite_text().encode() + b"# \xff\xfe\n"), "UTF-8"),
    Case("suite", "nul_byte", validate(suite_text() + "# \x00\n"), "special characters"),
    _suite("python_tag", "line", name="name: !!python/object/apply:os.system [echo hi]"),
    Case("suite", "two_documents", validate(suite_text() + "---\nname: b\n"), "line"),
    Case("suite", "top_level_scalar", validate("just words\n"), "(top level)"),
    Case("suite", "suite_symlink_loop", _suite_loop, "(file)"),
    Case("suite", "suite_name_too_long", lambda t: ["validate", str(t / ("s" * 5000))], "(file)"),
    _suite(
        "train_temperature_inf",
        "train.decoding.temperature",
        train="train: {decoding: {temperature: .inf}}",
    ),
    _suite(
        "train_temperature_tiny",
        "train.decoding.temperature",
        train="train: {decoding: {temperature: 1.0e-300}}",
    ),
    _suite(
        "eval_temperature_nan",
        "eval.decoding.temperature",
        eval="eval: {judges: [proxy], decoding: {temperature: .nan}}",
    ),
    _suite("top_p_nan", "train.decoding.top_p", train="train: {decoding: {top_p: .nan}}"),
    _suite(
        "rounds_float_huge",
        "budget.rounds",
        budget="budget: {prompts_per_round: 2,"
        " rounds: 1e24, samples_per_prompt: 2, max_new_tokens: 8}",
    ),
    _suite(
        "rounds_int_huge",
        "budget.rounds",
        budget="budget: {prompts_per_round: 2,"
        " rounds: 1000000000000000000000000, samples_per_prompt: 2, max_new_tokens: 8}",
    ),
    _suite(
        "prompts_per_round_huge",
        "budget.prompts_per_round",
        budget="budget:"
        " {prompts_per_round: 1000000000000, rounds: 1, samples_per_prompt: 2,"
        " max_new_tokens: 8}",
    ),
    _suite(
        "max_new_tokens_huge",
        "budget.max_new_tokens",
        budget="budget: {prompts_per_round:"
        " 2, rounds: 1, samples_per_prompt: 2, max_new_tokens: 1000000000}",
    ),
    _suite(
        "samples_per_prompt_huge",
        "budget.samples_per_prompt",
        budget="budget:"
        " {prompts_per_round: 2, rounds: 1, samples_per_prompt: 10000000, max_new_tokens: 8}",
    ),
    _suite("seed_huge", "seeds[0]", seeds="seeds: [1180591620717411303424]"),
    _suite("seed_string", "seeds[0]", seeds="seeds: ['0']"),
    _suite(
        "num_prompts_huge",
        "eval.num_prompts",
        eval="eval: {judges: [proxy], num_prompts: 1000000000000}",
    ),
    _suite(
        "bootstrap_huge", "eval.bootstrap", eval="eval: {judges: [proxy], bootstrap: 1000000000000}"
    ),
    _suite(
        "tolerance_inf",
        "eval.lm_eval.tolerance",
        eval="eval: {judges: [proxy], lm_eval: {tolerance: .inf}}",
    ),
    _suite(
        "tolerance_one",
        "eval.lm_eval.tolerance",
        eval="eval: {judges: [proxy], lm_eval: {tolerance: 1}}",
    ),
    _suite(
        "task_is_an_option",
        "eval.lm_eval.tasks[0]",
        eval="eval: {judges: [proxy], lm_eval: {tasks: ['--include-path=/tmp']}}",
    ),
    _suite(
        "task_is_a_path",
        "eval.lm_eval.tasks[0]",
        eval="eval: {judges: [proxy], lm_eval: {tasks: ['../../etc/passwd']}}",
    ),
    _suite(
        "task_with_space",
        "eval.lm_eval.tasks[0]",
        eval="eval: {judges: [proxy], lm_eval: {tasks: ['arc easy']}}",
    ),
    _suite("cpus_inf", "resources.cpus_per_run", resources="resources: {cpus_per_run: .inf}"),
    _suite("cpus_tiny", "resources.cpus_per_run", resources="resources: {cpus_per_run: 1.0e-9}"),
    _suite("gpus_tiny", "resources.gpus_per_run", resources="resources: {gpus_per_run: 1.0e-9}"),
    _suite(
        "retries_huge", "resources.max_retries", resources="resources: {max_retries: 1000000000}"
    ),
    _suite("address_empty", "resources.address", resources="resources: {address: ''}"),
    _params("pro_no_candidates", "pro", "candidates: []", "params.candidates"),
    _params("rrhf_one_dataset_candidate", "rrhf", "candidates: [chosen]", "params.candidates"),
    _params("pro_repeated_candidates", "pro", "candidates: [policy, policy]", "params.candidates"),
    _params("lr_nan", "dpo", "lr: .nan", "params.lr"),
    _params("lr_string", "dpo", "lr: '0.0002'", "params.lr"),
    _params("n_float", "best_of_n", "n: 4.0", "params.n"),
    _params("n_huge", "best_of_n", "n: 1000000000", "params.n"),
    _params("epochs_huge", "raft", "epochs: 1000000000", "params.epochs"),
    _params("beta_inf", "dpo", "beta: .inf", "params.beta"),
    _suite(
        "world_split_escapes",
        "data.train_prompts",
        data="data: {train_prompts: {source: world, split: ../../..},"
        " eval_prompts: {source: world}}",
    ),
    _suite("name_too_long", "name", name="name: " + "a" * 5000),
    _suite("path_no_such_user", "data.train_prompts.path", data=_file_data("~nosuchuser/x.jsonl")),
    _suite("path_too_long", "data.train_prompts.path", data=_file_data("d" * 5000 + ".jsonl")),
    Case("suite", "path_symlink_loop", _loop, "data.train_prompts.path"),
    Case(
        "suite",
        "path_not_jsonl",
        validate(suite_text(data=_file_data("notes.txt")), {"notes.txt": b'{"prompt": "hi"}\n'}),
        "data.train_prompts.path",
    ),
    _suite("method_not_a_mapping", "methods[0]", methods="methods: [5]"),
]

# --- overrides (on the default suite) ----------------------------------------------------------


def _override(id: str, override: str, expect: str) -> Case:
    return Case("override", id, lambda tmp: ["validate", TINY, "-o", override], expect)


OVERRIDES = [
    _override("rounds_1e24", "budget.rounds=1e24", "budget.rounds"),
    _override(
        "eval_temperature_inf", "eval.decoding.temperature=.inf", "eval.decoding.temperature"
    ),
    _override(
        "train_temperature_tiny", "train.decoding.temperature=1e-300", "train.decoding.temperature"
    ),
    _override("pro_candidates_empty", "methods.pro.params.candidates=[]", "candidates"),
    _override("lr_as_string", "methods.rrhf.params.lr='0.0002'", "params.lr"),
    _override("n_as_float", "methods.best_of_n.params.n=4.0", "params.n"),
    _override(
        "task_injection", "eval.lm_eval.tasks=[--include-path=/tmp]", "eval.lm_eval.tasks[0]"
    ),
    _override("world_split_escapes", "data.train_prompts.split=../../..", "data.train_prompts"),
    _override("num_prompts_huge", "eval.num_prompts=10000000000", "eval.num_prompts"),
    _override("unknown_alias", "name=*x", "name"),
    _override("deep_value", "budget.rounds=" + "[" * 400 + "]" * 400, "budget.rounds"),
    _override("into_an_int", "seeds.0.x=1", "seeds.0"),
    _override("gpus_tiny", "resources.gpus_per_run=1e-12", "resources.gpus_per_run"),
    _override("tolerance_nan", "eval.lm_eval.tolerance=.nan", "eval.lm_eval.tolerance"),
    _override("beta_inf", "methods.dpo.params.beta=.inf", "params.beta"),
    _override("index_out_of_range", "methods.99.name=a", "methods.99"),
]

# --- data files -----------------------------------------------------------------------------------


def _gz(text: str) -> bytes:
    return gzip.compress(text.encode())


PAIR = {"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: go"}


def _data(id: str, slot: str, name: str, content: bytes, expect: str) -> Case:
    prompts = b'{"prompt": "\\n\\nHuman: hi\\n\\nAssistant:"}\n'
    files = {"prompts.jsonl": prompts, name: content}
    fmt = "" if slot == "preferences" else ", format: prompt"
    train = (
        f"{{source: file, path: {name}{fmt}}}"
        if slot == "train_prompts"
        else ("{source: file, path: prompts.jsonl, format: prompt}")
    )
    evals = (
        f"{{source: file, path: {name}{fmt}}}"
        if slot == "eval_prompts"
        else ("{source: file, path: prompts.jsonl, format: prompt}")
    )
    prefs = f", preferences: {{source: file, path: {name}}}" if slot == "preferences" else ""
    text = suite_text(data=f"data: {{train_prompts: {train}, eval_prompts: {evals}{prefs}}}")
    return Case("data", id, validate(text, files), expect)


DATA = [
    _data("empty_train_file", "train_prompts", "t.jsonl", b"", "data.train_prompts"),
    _data(
        "garbage_train_file",
        "train_prompts",
        "t.jsonl",
        os.urandom(0) + bytes(range(256)) * 8,
        "data.train_prompts",
    ),
    _data(
        "blank_prompts", "train_prompts", "t.jsonl", b'{"prompt": "  "}\n' * 5, "data.train_prompts"
    ),
    _data("arrays_not_objects", "train_prompts", "t.jsonl", b"[1, 2]\n" * 5, "data.train_prompts"),
    _data(
        "wrong_field",
        "train_prompts",
        "t.jsonl",
        (json.dumps(PAIR) + "\n").encode() * 3,
        "data.train_prompts",
    ),
    _data(
        "truncated_gz_preferences",
        "preferences",
        "p.jsonl.gz",
        _gz((json.dumps(PAIR) + "\n") * 200)[:-30],
        "data.preferences.path",
    ),
    _data(
        "not_gzip_preferences",
        "preferences",
        "p.jsonl.gz",
        b"plain text\n",
        "data.preferences.path",
    ),
    _data(
        "identical_pairs",
        "preferences",
        "p.jsonl",
        (json.dumps({"chosen": PAIR["chosen"], "rejected": PAIR["chosen"]}) + "\n").encode(),
        "data.preferences",
    ),
    _data(
        "one_huge_line",
        "eval_prompts",
        "e.jsonl",
        b'{"prompt": "' + b"x" * 2_000_000 + b'"}\n',
        "data.eval_prompts",
    ),
    _data("blank_lines_only", "eval_prompts", "e.jsonl", b"\n\n  \n", "data.eval_prompts"),
    _data(
        "prompt_mismatch_pairs",
        "preferences",
        "p.jsonl",
        (json.dumps({**PAIR, "rejected": "\n\nHuman: bye\n\nAssistant: go"}) + "\n").encode(),
        "data.preferences",
    ),
]

# --- harness run --out, and the pool (each refused before anything starts) ------------------------


def _run(*extra: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["run", TINY, "-o", "seeds=[0]", "--only", "sft", *extra]


def _out_file(tmp: Path) -> list[str]:
    (tmp / "out").write_text("a file")
    return _run("--out", str(tmp / "out"))(tmp)


def _out_under_file(tmp: Path) -> list[str]:
    (tmp / "out").write_text("a file")
    return _run("--out", str(tmp / "out" / "sub"))(tmp)


def _suite_dir_is_file(tmp: Path) -> list[str]:
    (tmp / "out").mkdir()
    (tmp / "out" / "tiny").write_text("a file")
    return _run("--out", str(tmp / "out"))(tmp)


def _pool(override: str) -> Callable[[Path], list[str]]:
    return lambda tmp: _run("--out", str(tmp / "out"), "-o", override)(tmp)


OUT = [
    Case("out", "out_is_a_file", _out_file, "--out"),
    Case("out", "out_under_a_file", _out_under_file, "--out"),
    Case("out", "suite_folder_is_a_file", _suite_dir_is_file, "--out"),
    Case(
        "out",
        "cpus_beyond_the_pool",
        _pool("resources.cpus_per_run=4096"),
        "resources.cpus_per_run",
    ),
    Case(
        "out",
        "unreachable_address",
        lambda tmp: _run("--out", str(tmp / "out"), "--address", "127.0.0.1:1")(tmp),
        "127.0.0.1:1",
    ),
]

# --- results folders (harness leaderboard) ------------------------------------------------------


def _results(runs: dict[str, str], suite: str | None = None) -> Callable[[Path], list[str]]:
    def setup(tmp: Path) -> list[str]:
        from tests.report.test_results import write_results_dir

        out = write_results_dir(tmp / "res", results=[])
        for name, text in runs.items():
            (out / "runs" / name).write_text(text)
        if suite is not None:
            (out / "suite.json").write_text(suite)
        return ["leaderboard", str(out)]

    return setup


def _results_dir_is_file(tmp: Path) -> list[str]:
    (tmp / "res").write_text("a file")
    return ["leaderboard", str(tmp / "res")]


def _runs_is_file(tmp: Path) -> list[str]:
    (tmp / "res").mkdir()
    (tmp / "res" / "runs").write_text("a file")
    return ["leaderboard", str(tmp / "res")]


RESULTS = [
    Case("results", "run_file_null", _results({"null.json": "null"}), "null.json"),
    Case(
        "results", "run_file_truncated", _results({"cut.json": '{"run_id": "a", "met'}), "cut.json"
    ),
    Case("results", "run_file_list", _results({"list.json": "[1, 2]"}), "list.json"),
    Case(
        "results",
        "run_file_bad_metrics",
        _results(
            {
                "m.json": json.dumps(
                    {
                        "run_id": "a",
                        "suite": "s",
                        "variant": "v",
                        "method": "sft",
                        "seed": 0,
                        "status": "done",
                        "metrics": "many",
                    }
                )
            }
        ),
        "m.json",
    ),
    Case("results", "suite_json_null", _results({}, "null"), "suite.json"),
    Case("results", "suite_json_truncated", _results({}, '{"name": "gold'), "suite.json"),
    Case("results", "empty_folder", lambda tmp: ["leaderboard", str(tmp)], "runs"),
    Case("results", "results_dir_is_a_file", _results_dir_is_file, "res"),
    Case("results", "runs_is_a_file", _runs_is_file, "res"),
]

# --- gate tables (harness check) ------------------------------------------------------------------


def _tables(tmp: Path) -> tuple[Path, Path]:
    """A baseline and a candidate results dir (tables written, suite.json beside each)."""
    from harness.report.results import write_tables
    from tests.report.test_results import load_results, write_results_dir

    paths = []
    for name in ("base", "cand"):
        out = write_results_dir(tmp / name)
        write_tables(out, load_results(out))
        paths.append(out)
    return paths[0], paths[1]


def _edit_table(side: str, edit: Callable[..., object]) -> Setup:
    def setup(tmp: Path) -> list[str]:
        import pandas as pd

        base, cand = _tables(tmp)
        target = base if side == "base" else cand
        df = pd.read_parquet(target / "table.parquet")
        edit(df)
        df.to_parquet(target / "table.parquet", index=False)
        (target / "table.csv").unlink()
        return [
            "check",
            "--baseline",
            str(base / "table.parquet"),
            "--candidate",
            str(cand / "table.parquet"),
        ]

    return setup


def _set(metric: str, column: str, value: float) -> Callable[..., object]:
    def edit(df) -> None:  # type: ignore[no-untyped-def]
        df.loc[(df["metric"] == metric) & (df["variant"] == "dpo"), column] = value

    return edit


def _edit_suite(side: str, key: str, value: object) -> Setup:
    def setup(tmp: Path) -> list[str]:
        base, cand = _tables(tmp)
        target = base if side == "base" else cand
        dump = json.loads((target / "suite.json").read_text())
        node = dump
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
        (target / "suite.json").write_text(json.dumps(dump))
        return ["check", "--baseline", str(base), "--candidate", str(cand)]

    return setup


def _gate_args(*extra: str) -> Setup:
    def setup(tmp: Path) -> list[str]:
        base, cand = _tables(tmp)
        return ["check", "--baseline", str(base), "--candidate", str(cand), *extra]

    return setup


def _lacks_variant(tmp: Path) -> list[str]:
    import pandas as pd

    base, cand = _tables(tmp)
    df = pd.read_parquet(cand / "table.parquet")
    df[df["variant"] != "ppo"].to_parquet(tmp / "cand.parquet", index=False)
    return [
        "check",
        "--baseline",
        str(base / "table.parquet"),
        "--candidate",
        str(tmp / "cand.parquet"),
    ]


def _drop_column(df) -> None:  # type: ignore[no-untyped-def]
    del df["ci_low"]


def _unreadable_suite(tmp: Path) -> list[str]:
    args = _gate_args()(tmp)
    (Path(args[-1]) / "suite.json").write_text("{")
    return args


GATE = [
    Case(
        "gate",
        "winrate_seven",
        _edit_table("cand", _set("winrate.gold", "value", 7.0)),
        "winrate.gold",
    ),
    Case(
        "gate",
        "winrate_inf",
        _edit_table("cand", _set("winrate.gold", "value", float("inf"))),
        "winrate.gold",
    ),
    Case(
        "gate",
        "baseline_nan",
        _edit_table("base", _set("winrate.gold", "value", float("nan"))),
        "winrate.gold",
    ),
    Case(
        "gate",
        "interval_below_zero",
        _edit_table("cand", _set("winrate.gold", "ci_low", -5.0)),
        "winrate.gold",
    ),
    Case(
        "gate",
        "capability_delta_three",
        _edit_table("cand", _set("capability_delta.tiny_facts", "value", 3.0)),
        "capability_delta.tiny_facts",
    ),
    Case("gate", "missing_column", _edit_table("cand", _drop_column), "ci_low"),
    Case("gate", "candidate_lacks_a_variant", _lacks_variant, "ppo"),
    Case("gate", "tolerance_inf", _gate_args("--tolerance", "inf"), "--tolerance"),
    Case("gate", "tolerance_one", _gate_args("--tolerance", "1"), "--tolerance"),
    Case("gate", "tolerance_nan", _gate_args("--tolerance", "nan"), "--tolerance"),
    Case(
        "gate",
        "baseline_tolerance_one",
        _edit_suite("base", "eval.lm_eval.tolerance", 1.0),
        "suite.json",
    ),
    Case("gate", "other_budget", _edit_suite("cand", "budget.rounds", 99), "budget.rounds"),
    Case("gate", "other_world", _edit_suite("cand", "world.seed", 7), "world.seed"),
    Case(
        "gate", "other_eval_prompts", _edit_suite("cand", "eval.num_prompts", 5), "eval.num_prompts"
    ),
    Case("gate", "other_judges", _edit_suite("cand", "eval.judges", ["proxy"]), "eval.judges"),
    Case("gate", "candidate_suite_unreadable", _unreadable_suite, "suite.json"),
]

CASES = SUITES + OVERRIDES + DATA + OUT + RESULTS + GATE

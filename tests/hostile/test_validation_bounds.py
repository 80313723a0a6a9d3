"""Validation bounded in time and memory: sizes are checked before anything is expanded (sweeps,
seeds, judges, variants), and data files are read within a line count, a decompressed size and a
nesting depth, each refusal naming the field or the file and line. No test times anything: each
checks what keeps the work bounded (the expansion never called, the count in the message)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli.main import app
from harness.load import data
from harness.load.data import DataTooLargeError, DropReason, load_prompts_file, read_jsonl
from harness.suite import sweep
from harness.suite.loader import SpecIssue, SuiteError, load_suite
from tests.hostile.cases import suite_text


def issues_of(tmp_path: Path, text: str) -> list[SpecIssue]:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    return caught.value.errors


def invoke(args: list[str]):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, args, env={"COLUMNS": "200"})


# --- sizes before expansion ----------------------------------------------------------------------


def million_sweep() -> str:
    """A 2 KB sweep of 10^6 combinations (100 x 100 x 100)."""
    betas = ", ".join(f"0.{i:03d}" for i in range(1, 101))
    lrs = ", ".join(f"{i}.0e-7" for i in range(1, 101))
    sizes = ", ".join(str(i) for i in range(1, 101))
    sweep_ = f"{{beta: [{betas}], lr: [{lrs}], batch_size: [{sizes}]}}"
    return suite_text(methods=f"methods: [{{method: dpo, sweep: {sweep_}}}]")


def test_a_million_combinations_are_refused_unexpanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep of 10^6 combinations is refused with its count, before any variant is made: the
    expansion and the per-value checks are never called."""

    def never(*args: object) -> None:
        raise AssertionError("the sweep was expanded")

    monkeypatch.setattr(sweep, "_expand", never)
    monkeypatch.setattr(sweep, "_check", never)
    text = million_sweep()
    assert len(text) < 2500
    (issue,) = issues_of(tmp_path, text)
    assert issue.field == "methods"
    assert issue.given == "1000000" and "more than 1000" in issue.expected


def test_a_million_combinations_exit_2_from_the_command_line(tmp_path: Path) -> None:
    """`harness validate` on the 10^6 sweep exits 2 naming `methods` and the count."""
    path = tmp_path / "suite.yaml"
    path.write_text(million_sweep())
    result = invoke(["validate", str(path)])
    assert result.exit_code == 2
    assert "methods: sweeps give more than 1000 (given: 1000000)" in result.stderr
    assert "Traceback" not in result.output


def test_a_long_list_of_swept_values_is_refused_before_each_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """90,000 values of one swept parameter are counted first: their pairwise duplicate check
    and their validation never run."""
    monkeypatch.setattr(sweep, "_check", lambda *a: pytest.fail("each value was checked"))
    values = ", ".join(["0.1"] * 90_000)
    (issue,) = issues_of(
        tmp_path, suite_text(methods=f"methods: [{{method: dpo, sweep: {{beta: [{values}]}}}}]")
    )
    assert issue.field == "methods" and issue.given == "90000"


def test_99000_seeds_are_one_error_not_99000(tmp_path: Path) -> None:
    """99,000 repeated seeds give the schema's one `too long` error naming the count, not one
    duplicate-seed error per repeat (the duplicate check is skipped past the bound)."""
    seeds = ", ".join(["0"] * 99_000)
    (issue,) = issues_of(tmp_path, suite_text(seeds=f"seeds: [{seeds}]"))
    assert issue.field == "seeds"
    assert "at most 1000 items" in issue.expected and "99000" in issue.expected


def test_duplicate_seeds_are_found_in_one_pass(tmp_path: Path) -> None:
    """Repeated seeds within the bound are each named, the first occurrence kept."""
    issues = issues_of(tmp_path, suite_text(seeds="seeds: [3, 1, 3, 1, 2]"))
    assert [(i.field, i.expected) for i in issues] == [
        ("seeds[2]", "duplicate seed"),
        ("seeds[3]", "duplicate seed"),
    ]


def test_too_many_judges_are_refused(tmp_path: Path) -> None:
    """90,000 judges in eval.judges are one error naming eval.judges and the bound of 100."""
    judges = ", ".join(["proxy"] * 90_000)
    (issue,) = issues_of(tmp_path, suite_text(eval=f"eval: {{judges: [{judges}]}}"))
    assert issue.field == "eval.judges" and "at most 100 items" in issue.expected


def test_too_many_variants_are_one_error(tmp_path: Path) -> None:
    """30,000 variants with the same name are one error naming `methods` and the bound, not
    30,000 duplicate-name errors."""
    methods = ", ".join(["{method: sft}"] * 30_000)
    (issue,) = issues_of(tmp_path, suite_text(methods=f"methods: [{methods}]"))
    assert issue.field == "methods" and "at most 1000 items" in issue.expected


# --- data files ----------------------------------------------------------------------------------


def data_suite(tmp_path: Path, name: str, content: bytes) -> Path:
    (tmp_path / name).write_bytes(content)
    source = f"{{source: file, path: {name}, format: prompt}}"
    text = suite_text(data=f"data: {{train_prompts: {source}, eval_prompts: {{source: world}}}}")
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def test_a_gzip_of_newlines_is_refused_at_the_line_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small .gz of newlines (blank lines count) is refused at the line past the cap, naming
    the data field, the file and the line; no record is decoded."""
    monkeypatch.setattr(data, "MAX_DATA_LINES", 1000)
    monkeypatch.setattr(data, "_decode_line", lambda line: pytest.fail("a line was decoded"))
    path = data_suite(tmp_path, "nl.jsonl.gz", gzip.compress(b"\n" * 5_000_000))
    result = invoke(["validate", str(path)])
    assert result.exit_code == 2
    assert "data.train_prompts.path: line 1,001: more than 1,000 lines" in result.stderr
    assert "nl.jsonl.gz" in result.stderr and "Traceback" not in result.output


def test_a_gzip_bomb_is_refused_at_its_decompressed_size_cap(tmp_path: Path) -> None:
    """A .gz that decompresses to more than 100 times its size (one 50 MB line of 'a') stops
    there, naming the file, the line and the compression ratio."""
    path = tmp_path / "bomb.jsonl.gz"
    path.write_bytes(gzip.compress(b"a" * 50_000_000))
    with pytest.raises(DataTooLargeError) as caught:
        list(read_jsonl(path))
    assert caught.value.name == str(path)
    assert caught.value.reason.startswith("line 1: more than ")
    assert "100 times the .gz" in caught.value.reason


def test_a_plain_file_is_refused_at_the_byte_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A .jsonl larger than the byte cap is refused before it is read, naming its size."""
    monkeypatch.setattr(data, "MAX_DATA_BYTES", 100)
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps({"prompt": "x" * 200}) + "\n")
    with pytest.raises(DataTooLargeError, match="bytes; at most 100"):
        list(read_jsonl(path))


def test_a_deeply_nested_record_is_dropped_as_malformed(tmp_path: Path) -> None:
    """A record nested 100,000 deep (or just past the depth limit) is dropped as malformed, not a
    RecursionError; the file's flat records are kept."""
    path = tmp_path / "deep.jsonl"
    lines = [
        "[" * 100_000 + "]" * 100_000,
        '{"prompt": ' + "[" * 40 + "]" * 40 + "}",
        json.dumps({"prompt": "kept"}),
    ]
    path.write_text("\n".join(lines) + "\n")
    prompts, report = load_prompts_file(path, "prompt")
    assert prompts == ["kept"]
    assert report.dropped == {DropReason.MALFORMED_RECORD.value: 2}


def test_validate_names_a_deep_only_file(tmp_path: Path) -> None:
    """A data file whose only record nests too deeply exits 2 naming the data field and the drop
    reason, no traceback."""
    path = data_suite(tmp_path, "deep.jsonl", b"[" * 50_000 + b"]" * 50_000 + b"\n")
    result = invoke(["validate", str(path)])
    assert result.exit_code == 2
    assert "data.train_prompts" in result.stderr and "malformed_record 1" in result.stderr
    assert "Traceback" not in result.output


def test_a_number_of_5000_digits_is_a_malformed_record(tmp_path: Path) -> None:
    """A record holding a 5,000-digit number (beyond Python's 4,300-digit conversion limit) is
    dropped as malformed, not an internal error: the file's other record is kept."""
    from harness.load.data import load_prompts_file

    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "hi", "n": ' + "9" * 5000 + '}\n{"prompt": "ok"}\n')
    _, report = load_prompts_file(str(path), "prompt", None)
    assert report.kept == 1 and report.dropped.get("malformed_record") == 1

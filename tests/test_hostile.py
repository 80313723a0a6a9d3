"""The hostile-input corpus (``tests/hostile/cases.py``): every case ends in exit 2 with the field
or file named and no traceback; and the faults around it: the alias bomb in bounded memory, each
former hang a message instead, the lm-eval injection, a partial rerun that keeps every earlier
run, two writers of one file, the lock on a results folder."""

from __future__ import annotations

import json
import multiprocessing
import socket
import time
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli.main import app
from tests.hostile.cases import BOMB, CASES, Case, suite_text


def invoke(args: list[str]):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, args, env={"COLUMNS": "200"})


@pytest.mark.parametrize("case", CASES, ids=[f"{c.kind}-{c.id}" for c in CASES])
def test_hostile_input_exits_2_naming_the_field(case: Case, tmp_path: Path) -> None:
    result = invoke(case.setup(tmp_path))
    assert result.exit_code == 2, result.output
    assert case.expect in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert "internal error" not in result.output


def test_the_corpus_covers_every_class() -> None:
    kinds = {c.kind for c in CASES}
    assert kinds == {"suite", "override", "data", "out", "results", "gate"}
    assert len(CASES) >= 60 and len({(c.kind, c.id) for c in CASES}) == len(CASES)


# --- no hang, no blow-up ------------------------------------------------------------------------


def test_alias_bomb_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """Refused while counting the aliases' values, before any expansion: 9^10 values would take
    gigabytes; the whole command stays under 50 MiB."""
    path = tmp_path / "bomb.yaml"
    path.write_text(suite_text() + BOMB)  # 9^10 values once expanded
    tracemalloc.start()
    result = invoke(["validate", str(path)])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result.exit_code == 2 and "expands to more than 100,000 values" in result.stderr
    assert peak < 50 * 2**20


def test_an_empty_prompt_stream_raises_instead_of_looping() -> None:
    from methods.base import Budget, prompt_rounds

    with pytest.raises(ValueError, match="no training prompts"):
        prompt_rounds([], Budget(2, 3, 2, 8), seed=0)


def test_an_unreachable_cluster_is_a_message_after_one_bounded_try(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One connection attempt, bounded by ``CONNECT_SECONDS``, instead of Ray's own retries: a
    refusal is an ``InputError`` naming the address and the reason."""
    from harness.core.errors import InputError
    from harness.run import cluster

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    timeouts: list[float | None] = []
    connect = socket.create_connection

    def recorded(address: tuple[str, int], timeout: float | None = None) -> socket.socket:
        timeouts.append(timeout)
        return connect(address, timeout=timeout)

    monkeypatch.setattr(cluster.socket, "create_connection", recorded)
    unreachable = rf"'127\.0\.0\.1:{port}' is unreachable \(Connection refused"
    with pytest.raises(InputError, match=unreachable):
        cluster.check_reachable(f"127.0.0.1:{port}")
    assert timeouts == [cluster.CONNECT_SECONDS]
    with pytest.raises(InputError, match="expected HOST:PORT"):
        cluster.check_reachable("no-port-here")
    assert len(timeouts) == 1  # a malformed address is refused without trying it


def test_a_run_that_fits_no_node_is_named() -> None:
    from harness.run.cluster import unfit

    nodes = [{"CPU": 2.0}, {"CPU": 8.0, "GPU": 1.0}]
    assert unfit(4, 0, nodes) is None and unfit(4, 1, nodes) is None
    assert "largest node has 8 CPUs" in str(unfit(16, 0, nodes))
    assert "no node has a GPU" in str(unfit(1, 0.5, [{"CPU": 4.0}]))
    assert "both 4 CPUs and 1 GPUs" in str(unfit(4, 1, [{"CPU": 8.0}, {"CPU": 2.0, "GPU": 1.0}]))


# --- code from a suite never runs ----------------------------------------------------------------


def test_lm_eval_takes_task_names_only(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import lm_eval

    from harness.evaluation import capability

    calls: list[dict] = []  # type: ignore[type-arg]
    monkeypatch.setattr(lm_eval, "simple_evaluate", lambda **kw: calls.append(kw) or 1 / 0)
    monkeypatch.setattr(capability, "task_manager", lambda include, tasks: None)
    with pytest.raises(ValueError, match="not lm-eval task names"):
        capability.evaluate(tmp_path, ["--include-path=/tmp"])
    assert calls == []
    with pytest.raises(capability.CapabilityError, match="ZeroDivisionError"):
        capability.evaluate(tmp_path, ["arc_easy"], include_path=tmp_path, trust_remote_code=True)
    (call,) = calls
    assert call["tasks"] == ["arc_easy"] and call["model_args"]["pretrained"] == str(tmp_path)
    assert call["model_args"]["trust_remote_code"] is True


def test_the_injection_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["run", str(Path("suites/tiny.yaml").resolve()), "--out", str(out)]
    result = invoke([*args, "-o", "eval.lm_eval.tasks=[--include-path=/tmp]"])
    assert result.exit_code == 2 and "eval.lm_eval.tasks[0]" in result.stderr
    assert not out.exists()


def test_preflight_never_runs_remote_code(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import transformers
    import transformers.utils

    import harness.run.preflight
    from harness.run.preflight import check_model
    from harness.suite.schema import ModelRef

    monkeypatch.setattr(harness.run.preflight, "offline_by_env", lambda: False)  # the online path

    def no_config(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("AutoConfig was called for a remote-code model")

    found: list[str] = []
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", no_config)
    monkeypatch.setattr(transformers.utils, "cached_file", lambda p, f, **kw: found.append(f))
    assert check_model("policy", ModelRef(path="org/custom", trust_remote_code=True)) is None
    assert found == ["config.json"]


# --- results: a partial rerun, corrupt files, two writers, two drivers ----------------------------


def test_a_rerun_with_a_subset_keeps_every_earlier_run(tmp_path: Path) -> None:
    from harness.core.errors import InputError
    from harness.report.results import load_results, merged_suite, write_tables
    from tests.report.test_results import SUITE_JSON, write_results_dir

    out = write_results_dir(tmp_path)  # 3 variants x seeds 0, 1
    subset = {**SUITE_JSON, "seeds": [0], "methods": SUITE_JSON["methods"][:1]}
    merged = merged_suite(out, subset)
    assert merged["seeds"] == [0, 1] and merged["methods"] == SUITE_JSON["methods"]
    (out / "suite.json").write_text(json.dumps(merged))
    tables = write_tables(out, load_results(out))
    import pandas as pd

    assert pd.read_parquet(tables["runs.parquet"]).shape[0] == 6  # every run, none dropped
    changed = {**SUITE_JSON, "budget": {"rounds": 9}}
    with pytest.raises(InputError, match="another budget"):
        merged_suite(out, changed)


def test_a_corrupt_run_file_is_named_set_aside_and_redone(tmp_path: Path) -> None:
    from harness.report.results import read_run_files
    from tests.report.test_results import write_results_dir

    out = write_results_dir(tmp_path)
    before = [r for _, r in read_run_files(out / "runs", print)]
    (out / "runs" / "cut.json").write_text('{"run_id": "x", "sta')
    problems: list[str] = []
    # the cut file is not a run, so not a done one: the next harness run redoes it
    assert [r for _, r in read_run_files(out / "runs", problems.append)] == before
    assert len(problems) == 1 and "cut.json: unreadable run file" in problems[0]
    assert (out / "runs" / "corrupt" / "cut.json").exists()
    result = invoke(["leaderboard", str(out)])
    assert result.exit_code == 0 and "1 corrupt run file(s) set aside" in result.stderr


def _write_many(path: str, tag: int, count: int) -> None:
    from harness.core.files import write_atomic

    for i in range(count):
        write_atomic(Path(path), json.dumps({"writer": tag, "i": i, "pad": "x" * (i % 500)}))


@pytest.mark.slow
def test_two_concurrent_writers_never_crash_nor_leave_a_torn_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.json"
    path.write_text("{}")
    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_write_many, args=(str(path), t, 2000)) for t in (1, 2)]
    for w in writers:
        w.start()
    reads = bad = 0
    while any(w.is_alive() for w in writers):
        try:
            json.loads(path.read_text())
        except ValueError:
            bad += 1
        reads += 1
        time.sleep(0.0005)  # leave the two writers the CPU
    for w in writers:
        w.join()
    assert [w.exitcode for w in writers] == [0, 0] and bad == 0 and reads > 100
    assert [p.name for p in tmp_path.iterdir()] == ["shared.json"]  # no temporary left


def test_a_second_driver_on_one_folder_is_refused(tmp_path: Path) -> None:
    from harness.core.errors import InputError
    from harness.core.files import folder_lock

    with (
        folder_lock(tmp_path),
        pytest.raises(InputError, match="another harness run"),
        folder_lock(tmp_path),
    ):
        pass
    with folder_lock(tmp_path):  # released: the next driver gets it
        pass


# --- the gate -------------------------------------------------------------------------------------


def test_mismatched_settings_are_compared_only_when_asked(tmp_path: Path) -> None:
    from tests.hostile.cases import _edit_suite

    args = _edit_suite("cand", "budget.rounds", 99)(tmp_path)
    refused = invoke(args)
    assert refused.exit_code == 2 and "budget.rounds" in refused.stderr
    allowed = invoke([*args, "--allow-mismatch"])
    assert allowed.exit_code in (0, 1, 3) and "setting budget.rounds - vs 99" in allowed.stdout

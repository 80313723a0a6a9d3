"""Hostile results folders and run files: nothing is written outside ``--out`` (a linked lock, a
relative tracking store, a linked ``runs/corrupt``), every field of a run file is checked on
read (a file that fails is set aside, named, and its run redone), the temporaries of a killed
writer are removed by the next run, and names with mathtext markup are drawn as they are.

``harness run`` is driven here in-process with the pool faked (``fake_pool``): the results folder,
its lock, the tracker and the leaderboard are the real ones."""

from __future__ import annotations

import base64
import io
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from harness.cli.main import app
from harness.core.errors import InputError
from harness.core.files import folder_lock, remove_temporaries, write_atomic, write_atomic_with
from harness.suite.runs import MetricRow, RunFileError, RunResult, RunSpec
from tests.report.test_results import SUITE_JSON, make_result, make_results, write_results_dir

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "suites" / "tiny.yaml"
ONE_RUN = [
    "methods=[{method: sft}]",
    "seeds=[0]",
    "eval.judges=[proxy]",
    "eval.primary_judge=proxy",
]


def snapshot(*roots: Path, skip: Path | None = None) -> dict[str, tuple[str, bytes | str]]:
    """Every entry under ``roots`` (links not followed) with what it is and holds, except what
    lies under ``skip``."""
    found: dict[str, tuple[str, bytes | str]] = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in [*dirs, *files]:
                path = Path(folder) / name
                if skip is not None and path.is_relative_to(skip):
                    continue
                if path.is_symlink():
                    found[str(path)] = ("link", os.readlink(path))
                elif path.is_dir():
                    found[str(path)] = ("folder", "")
                else:
                    found[str(path)] = ("file", path.read_bytes())
    return found


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current directory, inside ``tmp_path``."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def _done(spec: RunSpec) -> RunResult:
    metrics = [MetricRow("winrate.proxy", 0.6, 0.5, 0.7, 8), MetricRow("kl", 1.5)]
    return RunResult.of(spec, "done", metrics=metrics, costs={"wall_seconds": 1.0})


@pytest.fixture
def fake_pool(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """``run_suite`` with no Ray and no models: every run is done at once (``_done``). Returns
    the labels of the runs each call ran."""
    from harness.run import runner, schedule, shared

    ran: list[list[str]] = []

    @contextmanager
    def pool(address: Any = None, num_cpus: Any = None, num_gpus: Any = None) -> Iterator[Any]:
        yield SimpleNamespace(resources={"CPU": 1.0}, board=None)

    def run_specs(todo: list[RunSpec], *args: Any, **kwargs: Any) -> list[RunResult]:
        on_result = args[3]
        ran.append([s.label for s in todo])
        results = [_done(s) for s in todo]
        for result in results:
            on_result(result)
        return results

    monkeypatch.setattr(runner, "check_before_start", lambda *args: None)
    monkeypatch.setattr(runner, "ensure_world", lambda *args, **kwargs: None)
    monkeypatch.setattr(runner, "describe_data", lambda *args: [])
    monkeypatch.setattr(schedule, "pool", pool)
    monkeypatch.setattr(schedule, "check_fits", lambda *args: None)
    monkeypatch.setattr(shared, "load_or_none", lambda path: object())
    monkeypatch.setattr(schedule, "run_specs", run_specs)
    return ran


def run(out: Path, *overrides: str) -> tuple[Any, str]:
    """``harness run`` of the one-run tiny suite into ``out``: (outcome, what it printed)."""
    from harness.run.runner import run_suite
    from harness.suite.loader import load_suite

    printed = io.StringIO()
    suite = load_suite(TINY, [*ONE_RUN, *overrides])
    outcome = run_suite(suite, out, console=Console(file=printed, width=200))
    return outcome, printed.getvalue()


# --- nothing outside --out ----------------------------------------------------------------------


def test_a_linked_lock_is_refused_and_its_target_left_untouched(
    tmp_path: Path, here: Path, fake_pool: list[list[str]]
) -> None:
    """A ``.lock`` that is a symbolic link to a file elsewhere: the run is refused (naming the
    lock), no run starts, and neither the linked file nor anything else outside ``--out``
    changes."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    folder = tmp_path / "out" / "tiny"
    folder.mkdir(parents=True)
    (folder / ".lock").symlink_to(victim)
    before = snapshot(tmp_path, skip=tmp_path / "out")
    with pytest.raises(InputError, match=r"\.lock: cannot be this folder's lock \(a symbolic link"):
        run(tmp_path / "out")
    assert fake_pool == []
    assert victim.read_text() == "precious\n"
    assert snapshot(tmp_path, skip=tmp_path / "out") == before
    assert list(here.iterdir()) == []


def test_a_lock_hard_linked_to_a_file_elsewhere_is_refused(tmp_path: Path) -> None:
    """A ``.lock`` that is a second name of a file outside the folder (a hard link): refused,
    and the file keeps its content."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    folder = tmp_path / "out"
    folder.mkdir()
    os.link(victim, folder / ".lock")
    hard_link = r"cannot be this folder's lock \(a hard link\)"
    with pytest.raises(InputError, match=hard_link), folder_lock(folder):
        pass
    assert victim.read_text() == "precious\n"


def test_a_pipe_as_lock_is_refused_without_waiting(tmp_path: Path) -> None:
    """A ``.lock`` that is a named pipe: opening it never blocks, the lock is refused as not a
    file."""
    os.mkfifo(tmp_path / ".lock")
    refused: list[BaseException] = []

    def take() -> None:
        try:
            with folder_lock(tmp_path):
                pass
        except InputError as exc:
            refused.append(exc)

    taker = threading.Thread(target=take, daemon=True)
    taker.start()
    taker.join(timeout=30)
    assert not taker.is_alive() and len(refused) == 1 and "(not a file)" in str(refused[0])


def test_a_relative_tracking_store_is_written_inside_the_results(
    tmp_path: Path, here: Path, fake_pool: list[list[str]]
) -> None:
    """``tracking.uri: mlruns`` (relative): the MLflow store is made in ``--out/<suite>/mlruns``,
    and nothing appears in the current directory nor anywhere else outside ``--out``."""
    pytest.importorskip("mlflow")
    before = snapshot(tmp_path, skip=tmp_path / "out")
    outcome, printed = run(
        tmp_path / "out", "tracking.backend=mlflow", "tracking.uri=mlruns", "tracking.experiment=x"
    )
    assert outcome.exit_code == 0 and "not logged" not in printed, printed
    assert (tmp_path / "out" / "tiny" / "mlruns").is_dir()
    assert list(here.iterdir()) == []
    assert snapshot(tmp_path, skip=tmp_path / "out") == before


def test_tracking_uris_resolve_relative_stores_inside_the_results(tmp_path: Path) -> None:
    """Relative stores (a path, ``file:``, ``sqlite:///``) are placed in the suite's results;
    absolute paths, ``~`` and servers are kept as given."""
    from harness.run.tracking import mlflow_uri

    out = tmp_path / "out" / "tiny"
    inside = (out / "m").resolve()
    assert mlflow_uri(None, out) == (out / "mlruns").resolve().as_uri()
    assert mlflow_uri("m", out) == inside.as_uri()
    assert mlflow_uri("./m", out) == inside.as_uri()
    assert mlflow_uri("file:m", out) == inside.as_uri()
    assert mlflow_uri("sqlite:///m.db", out) == f"sqlite:///{(out / 'm.db').resolve()}"
    assert mlflow_uri("/abs/mlruns", out) == "/abs/mlruns"
    assert mlflow_uri("file:///abs/mlruns", out) == "file:///abs/mlruns"
    assert mlflow_uri("sqlite:////abs/m.db", out) == "sqlite:////abs/m.db"
    assert mlflow_uri("~/mlruns", out) == str(Path("~/mlruns").expanduser())
    assert mlflow_uri("http://host:5000", out) == "http://host:5000"
    assert mlflow_uri("databricks", out) == "databricks"


def test_a_linked_corrupt_folder_never_takes_a_file_outside(tmp_path: Path) -> None:
    """``runs/corrupt`` linked to a folder elsewhere: an unreadable run file is named and left in
    place, never moved through the link."""
    from harness.report.results import read_run_files

    out = write_results_dir(tmp_path / "results")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "runs" / "corrupt").symlink_to(elsewhere)
    (out / "runs" / "cut.json").write_text("{")
    problems: list[str] = []
    read_run_files(out / "runs", problems.append)
    assert list(elsewhere.iterdir()) == [] and (out / "runs" / "cut.json").exists()
    assert len(problems) == 1 and "cut.json: unreadable run file" in problems[0]
    assert "left in place" in problems[0]


def test_a_temporary_replaced_by_a_link_is_never_renamed_into_place(tmp_path: Path) -> None:
    """A temporary swapped for a symbolic link while it is written is refused and removed; the
    file it points at and the destination are left as they were."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    target = tmp_path / "out" / "table.csv"

    def swap(tmp: Path) -> None:
        tmp.unlink()
        tmp.symlink_to(victim)

    with pytest.raises(OSError, match="other than a file"):
        write_atomic_with(target, swap)
    assert victim.read_text() == "precious\n" and not target.exists()
    assert list((tmp_path / "out").iterdir()) == []


def test_writing_over_a_linked_file_replaces_the_link_not_its_target(tmp_path: Path) -> None:
    """A results file that is a symbolic link to a file elsewhere: the new content replaces the
    link inside the folder; the file elsewhere keeps its content."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "suite.json").symlink_to(victim)
    write_atomic(out / "suite.json", "{}")
    assert victim.read_text() == "precious\n"
    assert not (out / "suite.json").is_symlink() and (out / "suite.json").read_text() == "{}"


# --- run files checked on read -----------------------------------------------------------------

WRONG = {
    "samples": ["a", "b"],
    "costs": {"wall_seconds": "ten"},
    "provenance": ["git"],
    "rounds": {"round": 1},
    "checkpoints": [{"round": "one", "answers": {}}],
    "bon_curve": [{"n": 1}],
    "metrics": [{"metric": "kl", "value": "1.0"}],
    "seed": True,
    "attempts": 1.5,
    "error": 3,
}


@pytest.mark.parametrize("field", sorted(WRONG))
def test_a_field_of_the_wrong_type_is_named_on_read(field: str) -> None:
    """Each field of the wrong type is refused on read with a message naming the field."""
    data = json.loads(make_result("dpo", 0).to_json())
    data[field] = WRONG[field]
    with pytest.raises(RunFileError, match=rf"field '{field}[^']*': "):
        RunResult.from_json(json.dumps(data))


def test_the_message_names_the_place_inside_a_field() -> None:
    """A wrong value deep inside a field is named by its place (list index, key) and by what was
    expected and found; a missing or unknown field is named too."""
    data = json.loads(make_result("dpo", 0).to_json())
    data["metrics"][2]["value"] = "high"
    with pytest.raises(RunFileError, match=r"'metrics\[2\]\.value': expected a number, not a str"):
        RunResult.from_json(json.dumps(data))
    data = json.loads(make_result("dpo", 0).to_json())
    data["samples"] = {"prompt_id": [0, 1], "score.proxy": [0.5]}
    with pytest.raises(RunFileError, match="'samples': expected columns of one length"):
        RunResult.from_json(json.dumps(data))
    del data["variant"]
    with pytest.raises(RunFileError, match="field 'variant' is missing"):
        RunResult.from_json(json.dumps(data))
    data = {**json.loads(make_result("dpo", 0).to_json()), "extra": 1}
    with pytest.raises(RunFileError, match="field 'extra' is not a field of a run file"):
        RunResult.from_json(json.dumps(data))


def test_every_field_a_run_writes_reads_back() -> None:
    """Results as runs write them, with checkpoints, a best-of-n curve, rounds and samples,
    pass the check and read back equal."""
    full = replace(
        make_result("dpo", 0),
        rounds=[{"round": 1, "steps": 4, "loss": 0.5, "mean_reward": 0.25}],
        samples={"prompt_id": [0, 0], "sample": [0, 1], "response": ["a", "b"], "score.x": [1, 2]},
        checkpoints=[
            {
                "round": 1,
                "step": 4,
                "kl": 0.1,
                "reward.proxy": 0.3,
                "costs": {"forward_tokens": 10.0},
                "answers": {"prompt_id": [0], "kl": [0.1], "score.proxy": [0.3]},
                "eval_seconds": 0.2,
            }
        ],
        bon_curve=[
            {"n": 1, "kl_bound": 0.0, "metric": "reward.proxy", "value": 0.2}
            | {"ci_low": 0.1, "ci_high": 0.3, "prompts": 4}
        ],
        error=None,
        provenance={**make_result("dpo", 0).provenance, "data": {"train": {"rows": 3}}},
    )
    for result in [full, *make_results()]:
        assert RunResult.from_json(result.to_json()) == result


@pytest.mark.parametrize("field", ["samples", "costs", "provenance", "rounds", "checkpoints"])
def test_a_wrong_run_file_is_set_aside_named_and_the_leaderboard_still_builds(
    tmp_path: Path, field: str
) -> None:
    """A run file whose field has the wrong type is moved to ``runs/corrupt/`` with a message
    naming the file and the field; ``harness leaderboard`` builds from the others (exit 0)."""
    from harness.report.results import read_run_files

    out = write_results_dir(tmp_path)
    bad = out / "runs" / f"{make_result('dpo', 0).run_id}.json"
    data = json.loads(bad.read_text())
    data[field] = WRONG[field]
    bad.write_text(json.dumps(data))
    problems: list[str] = []
    loaded = read_run_files(out / "runs", problems.append)
    assert len(loaded) == 5 and len(problems) == 1
    assert f"{bad}: unreadable run file (field '{field}" in problems[0]
    assert (out / "runs" / "corrupt" / bad.name).exists() and not bad.exists()
    bad.write_text(json.dumps(data))  # once more, for the command
    result = CliRunner().invoke(app, ["leaderboard", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "corrupt run file(s) set aside" in result.stderr
    assert "Traceback" not in result.output


def test_resume_reruns_a_run_whose_file_failed_the_check(
    tmp_path: Path, here: Path, fake_pool: list[list[str]]
) -> None:
    """A finished run whose file has ``bon_curve`` of the wrong type is not done: the next run
    names the file and the field, sets it aside and runs it again; the leaderboard is written."""
    out = tmp_path / "out"
    run(out)
    assert fake_pool == [["sft/seed0"]]
    (file,) = (out / "tiny" / "runs").glob("*.json")
    data = json.loads(file.read_text())
    data["bon_curve"] = "none"
    file.write_text(json.dumps(data))
    outcome, printed = run(out)
    assert fake_pool[-1] == ["sft/seed0"]
    assert "unreadable run file (field 'bon_curve': expected a list" in " ".join(printed.split())
    assert (out / "tiny" / "runs" / "corrupt" / file.name).exists()
    assert outcome.exit_code == 0 and outcome.paths["leaderboard.html"].exists()
    assert RunResult.from_json(file.read_text()).status == "done"
    assert list(here.iterdir()) == []


# --- the temporaries of a killed writer -------------------------------------------------------


def test_the_next_run_removes_what_a_killed_writer_left(
    tmp_path: Path, here: Path, fake_pool: list[list[str]]
) -> None:
    """Temporaries beside results files (``.<name>.<8 characters>.tmp``: files, a folder, a link)
    are removed at the start of the next run, and said; files of other names stay, and a linked
    temporary's target elsewhere is untouched."""
    out = tmp_path / "out"
    run(out)
    folder = out / "tiny"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    left = [
        folder / ".table.csv.ab12cd34.tmp",
        folder / "runs" / ".0123456789abcdef.json.k_9xq2zz.tmp",
        folder / ".policy.zz99yy88.tmp",
    ]
    left[0].write_text("half a ta")
    left[1].write_text('{"run_id": "01')
    left[2].mkdir()
    (left[2] / "model.safetensors").write_bytes(b"\0" * 10)
    link = folder / "shared" / ".reference-x.json.qwertyui.tmp"
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(victim)
    kept = [folder / "notes.tmp", folder / ".hidden"]
    for path in kept:
        path.write_text("mine")
    _, printed = run(out)
    assert not any(p.exists() or p.is_symlink() for p in [*left, link])
    assert all(p.read_text() == "mine" for p in kept) and victim.read_text() == "precious\n"
    assert "removed 4 temporary file(s) an interrupted run left" in printed
    assert [p.name for p in folder.rglob("*.tmp")] == ["notes.tmp"]


def test_temporaries_are_removed_only_under_the_folder_lock(
    tmp_path: Path, fake_pool: list[list[str]]
) -> None:
    """While another process holds the folder's lock, a run is refused before touching
    anything: the other writer's temporary stays."""
    out = tmp_path / "out"
    folder = out / "tiny"
    folder.mkdir(parents=True)
    theirs = folder / ".table.csv.ab12cd34.tmp"
    theirs.write_text("being written")
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    holding, release = ctx.Event(), ctx.Event()

    def hold() -> None:
        with folder_lock(folder):
            holding.set()
            release.wait(60)

    holder = ctx.Process(target=hold)
    holder.start()
    try:
        assert holding.wait(60)
        with pytest.raises(InputError, match="another harness run is writing here"):
            run(out)
        assert theirs.read_text() == "being written"
    finally:
        release.set()
        holder.join(60)
    assert fake_pool == []


def test_remove_temporaries_never_follows_a_linked_folder(tmp_path: Path) -> None:
    """A linked folder under the results is not walked: the temporaries of the folder it
    points at, outside, stay."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".x.json.ab12cd34.tmp").write_text("theirs")
    out = tmp_path / "out"
    out.mkdir()
    (out / "linked").symlink_to(elsewhere)
    (out / ".y.json.ab12cd34.tmp").write_text("ours")
    assert remove_temporaries(out) == [out / ".y.json.ab12cd34.tmp"]
    assert (elsewhere / ".x.json.ab12cd34.tmp").read_text() == "theirs"


# --- names with mathtext markup ----------------------------------------------------------------

MARKUP = [r"$\frac{a}{b}$", "a$b", r"$\undefinedcommand$", "$^$", r"cost $\$ 5", "x_$1"]


def test_variant_names_with_mathtext_markup_are_drawn_as_they_are(tmp_path: Path) -> None:
    """Variants, judges and tasks named with ``$`` markup (valid, broken or unbalanced) never
    crash the leaderboard's plots: every plot is a PNG, and the names are in the page as
    written."""
    names = dict(zip(["sft", "dpo", "ppo"], MARKUP[:3], strict=True))
    results = [replace(r, variant=names[r.variant]) for r in make_results()]
    methods = [{**m, "name": names[m["name"]]} for m in SUITE_JSON["methods"]]
    out = write_results_dir(tmp_path, results)
    (out / "suite.json").write_text(json.dumps({**SUITE_JSON, "methods": methods}))
    result = CliRunner().invoke(app, ["leaderboard", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    page = (out / "leaderboard.html").read_text()
    images = [part.split('"')[0] for part in page.split("data:image/png;base64,")[1:]]
    assert len(images) >= 3
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "$\\frac{a}{b}$" in page and "a$b" in page


@pytest.mark.parametrize("name", MARKUP)
def test_plain_escapes_every_dollar_so_no_label_is_mathtext(name: str) -> None:
    """``plain`` leaves no label that matplotlib reads as mathtext, and a text drawn from it
    shows the name unchanged."""
    from matplotlib.figure import Figure

    from harness.report.plots import _png, plain

    fig = Figure()
    text = fig.text(0.5, 0.5, plain(name))
    assert text._preprocess_math(text.get_text()) == (name, False)
    assert base64.b64decode(_png(fig)).startswith(b"\x89PNG")

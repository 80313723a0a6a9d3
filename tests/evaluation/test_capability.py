"""lm-eval's task index: a world's own tasks are found without indexing lm-eval's built-in ones."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from harness.evaluation import capability


def test_local_tasks_skip_the_built_in_index(tiny_world: Path) -> None:
    manager = capability.task_manager(str(tiny_world / "tasks"), ["tiny_facts", "tiny_arith"])
    assert {"tiny_facts", "tiny_arith"} <= set(manager.all_tasks)
    assert len(manager.all_tasks) < 10  # the world's tasks only: no built-in one indexed


def test_a_task_missing_from_the_folder_brings_in_the_built_in_ones(
    tiny_world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[dict[str, Any]] = []

    class Manager:
        def __init__(self, include_path: str, include_defaults: bool = True) -> None:
            made.append({"include_path": include_path, "include_defaults": include_defaults})
            self.all_tasks = ["tiny_facts"] + (["hellaswag"] if include_defaults else [])

    import lm_eval.tasks

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", Manager)
    manager = capability.task_manager(str(tiny_world / "tasks"), ["tiny_facts", "hellaswag"])
    assert "hellaswag" in manager.all_tasks
    assert [m["include_defaults"] for m in made] == [False, True]


def _out(task: str, samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {"results": {task: {}}, "samples": {task: samples}}


def test_items_keep_their_id_stratum_and_bits() -> None:
    choice = capability._score(
        _out(
            "facts",
            [
                {"doc_id": 1, "doc": {"id": "f-1", "stratum": "seen-1"}, "acc": 0.0},
                {"doc_id": 0, "doc": {"id": "f-0", "stratum": "seen-2"}, "acc": 1.0},
            ],
        ),
        "facts",
    )
    assert (choice.ids, choice.strata, choice.items) == (
        ["f-0", "f-1"],
        ["seen-2", "seen-1"],
        [1.0, 0.0],
    )
    assert choice.metric == capability.ACC and choice.acc == 0.5
    # loglikelihood_rolling: (loglikelihood, bytes) per document -> -ll / bytes / ln 2
    rolling = capability._score(
        _out("text", [{"doc_id": 0, "doc": {}, "bits_per_byte": (-math.log(2) * 50, 100)}]), "text"
    )
    assert rolling.metric == capability.BITS_PER_BYTE
    assert rolling.items == [pytest.approx(0.5)] and rolling.ids == ["0"]


def _score(task: str, values: list[float], metric: str = capability.ACC) -> capability.TaskScore:
    ids = [f"i{k}" for k in range(len(values))]
    n = len(values)
    return capability.TaskScore(task, sum(values) / n, 0.0, n, values, ids, ["s"] * n, metric)


def test_rows_pair_items_and_flag_a_drop() -> None:
    base = {"facts": _score("facts", [1.0] * 300 + [0.0] * 100)}
    same = capability.capability_rows(base, base, tolerance=0.05)
    delta = next(r for r in same if r.metric == "capability_delta.facts")
    assert delta.value == 0.0 and delta.ci_low < 0.0 < delta.ci_high  # never zero-width
    assert delta.ci_high - delta.ci_low < 0.03
    dropped = {"facts": _score("facts", [1.0] * 240 + [0.0] * 160)}
    rows = {r.metric: r for r in capability.capability_rows(base, dropped, tolerance=0.05)}
    assert rows["capability_delta.facts"].value == pytest.approx(-0.15)
    assert rows["regression.facts"].value == 1.0


def test_bits_per_byte_deltas_are_bits_saved() -> None:
    base = {"text": _score("text", [1.0, 1.2, 0.8, 1.1], capability.BITS_PER_BYTE)}
    worse = {"text": _score("text", [1.5, 1.6, 1.4, 1.5], capability.BITS_PER_BYTE)}
    rows = {r.metric: r for r in capability.capability_rows(base, worse, tolerance=0.05)}
    assert rows["bits_per_byte.text"].value == pytest.approx(1.5)
    assert rows["capability_delta.text"].value == pytest.approx(-0.475)  # a loss is negative
    assert rows["regression.text"].value == 1.0
    assert "capability.text" not in rows  # bits per byte are no accuracy


def test_items_of_another_probe_are_refused() -> None:
    base = {"facts": _score("facts", [1.0, 0.0])}
    other = {
        "facts": capability.TaskScore("facts", 0.5, 0.0, 2, [1.0, 0.0], ["x", "y"], ["s", "s"])
    }
    with pytest.raises(ValueError, match="differ"):
        capability.capability_rows(base, other, tolerance=0.05)


@pytest.mark.slow
def test_the_hub_suites_tasks_are_lm_evals_own() -> None:
    """suites/hh.yaml's tasks exist in lm-eval's index (read offline: no dataset is fetched)."""
    import yaml
    from lm_eval.tasks import TaskManager

    suite = yaml.safe_load((Path(__file__).parents[2] / "suites" / "hh.yaml").read_text())
    named = suite["eval"]["lm_eval"]["tasks"]
    assert set(named) <= set(TaskManager().all_tasks)
    assert suite["eval"]["lm_eval"]["limit"] is not None


@pytest.mark.slow
def test_batched_scoring_agrees_with_lm_evals_own(
    tiny_world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The world's tasks scored in batches give lm-eval's ``hf`` model's results, item by item."""
    tasks = ["tiny_arith", "tiny_text"]
    ours = capability.evaluate(tiny_world / "policy", tasks, tiny_world / "tasks", limit=40)
    monkeypatch.setattr(capability, "batched_lm", lambda *args: "hf")
    theirs = capability.evaluate(tiny_world / "policy", tasks, tiny_world / "tasks", limit=40)
    assert ours["tiny_arith"].items == theirs["tiny_arith"].items
    assert ours["tiny_arith"].ids == theirs["tiny_arith"].ids
    assert ours["tiny_text"].items == pytest.approx(theirs["tiny_text"].items, rel=1e-4)


def test_each_items_result_is_kept(tmp_path: Path) -> None:
    scores = {"facts": _score("facts", [1.0, 0.0]), "text": _score("text", [0.5], "bits_per_byte")}
    capability.write_items(scores, tmp_path / "run" / capability.ITEMS_FILE)
    lines = [
        json.loads(x) for x in (tmp_path / "run" / capability.ITEMS_FILE).read_text().splitlines()
    ]
    assert lines[1] == {"task": "facts", "id": "i1", "stratum": "s", "metric": "acc", "value": 0.0}
    assert lines[2]["metric"] == "bits_per_byte" and len(lines) == 3

"""lm-eval's task index: a world's own tasks are found without indexing lm-eval's built-in ones."""

from __future__ import annotations

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

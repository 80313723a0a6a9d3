"""Folders written whole or not at all (``harness.core.files``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.files import atomic_folder, publish_folder


def test_an_atomic_folder_replaces_the_old_copy_whole(tmp_path: Path) -> None:
    target = tmp_path / "policy"
    target.mkdir()
    (target / "old.bin").write_text("old")
    with atomic_folder(target) as tmp:
        assert not target.joinpath("new.bin").exists() and tmp.parent == tmp_path
        (tmp / "new.bin").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.bin"]
    assert [p.name for p in tmp_path.iterdir()] == ["policy"]  # nothing left beside it


def test_a_failed_atomic_folder_leaves_the_old_copy_and_no_leftovers(tmp_path: Path) -> None:
    target = tmp_path / "policy"
    target.mkdir()
    (target / "old.bin").write_text("old")
    with pytest.raises(RuntimeError, match="killed"), atomic_folder(target) as tmp:
        (tmp / "half.bin").write_text("half")
        raise RuntimeError("killed mid-write")
    assert sorted(p.name for p in target.iterdir()) == ["old.bin"]
    assert [p.name for p in tmp_path.iterdir()] == ["policy"]


def test_publish_keeps_the_first_writers_folder(tmp_path: Path) -> None:
    first, second, target = tmp_path / "a", tmp_path / "b", tmp_path / "world"
    for folder, mark in ((first, "first"), (second, "second")):
        folder.mkdir()
        (folder / "who").write_text(mark)
    assert publish_folder(first, target) is True
    assert publish_folder(second, target) is False
    assert (target / "who").read_text() == "first" and not second.exists()

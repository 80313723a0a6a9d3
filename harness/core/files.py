"""Writing files and folders so that a killed process never leaves a half-written one behind, and
a lock so that two processes never write one results folder at once."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.core.errors import InputError


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it and a rename."""
    write_atomic_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_atomic_with(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` into a fresh temporary file beside ``path``, then rename it to ``path``
    (atomic on one filesystem). The temporary file is removed if ``write`` fails; two writers of
    one path never share a temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """A fresh folder beside ``path`` to write into. When the block ends, it replaces ``path``
    (an older copy is renamed aside, then removed); when the block fails, it is removed and
    ``path`` is left as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = tmp.with_suffix(".old")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def publish_folder(partial: Path, target: Path) -> bool:
    """Rename the finished folder ``partial`` to ``target`` unless another process published
    ``target`` first: then ``partial`` is removed and theirs kept. True when ours was published."""
    try:
        partial.rename(target)
        return True
    except OSError:  # target exists and is not empty: another writer finished first
        if not target.is_dir():
            raise
        shutil.rmtree(partial, ignore_errors=True)
        return False


LOCK_NAME = ".lock"


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder/.lock`` exclusively (``flock``: released by the system when the process
    ends, even by ``kill -9``); ``InputError`` at once when another process holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_NAME, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise InputError(
                f"{folder}: another harness run is writing here ({holder}); wait for it to end"
                " or give another --out"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}")
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

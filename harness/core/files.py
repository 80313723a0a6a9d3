"""Writing files and folders so that a killed process never leaves a half-written one behind, and
a lock so that two processes never write one results folder at once."""

from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.core.errors import InputError


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it and a rename."""
    fd, tmp = _fresh_temporary(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic_with(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` into a fresh temporary file beside ``path``, then rename it to ``path``
    (atomic on one filesystem). The temporary file is removed if ``write`` fails; two writers of
    one path never share a temporary file."""
    fd, tmp = _fresh_temporary(path)
    os.close(fd)
    try:
        write(tmp)
        if not stat.S_ISREG(tmp.lstat().st_mode):
            raise OSError(
                errno.EEXIST, "replaced by something other than a file while written", tmp
            )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# a temporary beside its file or folder: ".<name>.<8 characters>.tmp" (write_atomic_with,
# atomic_folder and the tempfile module's names alike)
TEMPORARY = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")


def _fresh_temporary(path: Path) -> tuple[int, Path]:
    """A new file ``.<name>.<random>.tmp`` beside ``path``, opened for writing: created here
    (``O_EXCL``), never through a symbolic link (``O_NOFOLLOW``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))


def remove_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files and folders (``TEMPORARY``) that writers killed mid-write
    (``kill -9``) left anywhere under ``folder``; return them. Symbolic links are removed, never
    followed. Only for a folder whose writers are all gone: under its ``folder_lock``."""
    removed = []
    for root, dirs, files in os.walk(folder):  # never into a linked folder
        for name in [*dirs, *files]:
            if TEMPORARY.fullmatch(name):
                found = Path(root) / name
                if found.is_dir() and not found.is_symlink():
                    shutil.rmtree(found, ignore_errors=True)
                else:
                    found.unlink(missing_ok=True)
                removed.append(found)
        dirs[:] = [d for d in dirs if not TEMPORARY.fullmatch(d)]
    return sorted(removed)


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
    old = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")  # a kill leaves a TEMPORARY
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
    ends, even by ``kill -9``); ``InputError`` at once when another process holds it, or when
    ``.lock`` is not a plain file of the folder's own (a symbolic or hard link to a file
    elsewhere, a pipe, a folder): nothing is written through it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        reason = "a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
        raise InputError(f"{path}: cannot be this folder's lock ({reason}); remove it") from None
    found = os.fstat(fd)
    if not stat.S_ISREG(found.st_mode) or found.st_nlink != 1:
        os.close(fd)
        what = "a hard link" if stat.S_ISREG(found.st_mode) else "not a file"
        raise InputError(f"{path}: cannot be this folder's lock ({what}); remove it")
    with os.fdopen(fd, "r+", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            said = "".join(c for c in lock.read(200) if c.isprintable()).strip()
            holder = said or "another process"
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

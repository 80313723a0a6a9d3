"""Writing files so that a killed process never leaves a half-written one behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


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

"""Atomic file writes, the one helper for every file that must be whole or absent: the Kite
caches (instruments, login tokens; private by default), the store's metadata.json and segment
indexes, the store's instruments table and replay's exports (``--out``)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never a mix
    (see :func:`atomic_output`); missing parent directories are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, mode) as f:
        f.write(data)


@contextlib.contextmanager
def atomic_output(path: Path, mode: int = 0o600) -> Iterator[BinaryIO]:
    """A binary file that becomes ``path`` when the block ends: written as a temporary file in
    the same directory, fsynced, renamed over ``path`` and the directory entry fsynced. When the
    block raises (an error, Ctrl-C) the temporary file is removed and ``path`` is untouched.

    The temporary file is created with ``mode`` from the start (no window where a token is
    world-readable).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # O_CREAT's mode is masked by umask; an old tmp keeps its mode
        f = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)

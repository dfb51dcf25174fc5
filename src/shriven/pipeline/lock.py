"""One recorder per data directory: an exclusive ``flock`` on ``<data_dir>/.shriven.lock``.

Two daemons writing one store would each "recover" the other's live segment (truncating frames it
is still writing), race for segment numbers and overwrite each other's ``metadata.json``. The
lock is held for the whole run and released by the kernel however the process ends (Ctrl-C,
SIGKILL, a crash), so a stale lock file never blocks the next start. Readers take no lock.

The lock file is opened with ``O_NOFOLLOW``: a symlink there is refused, never followed (its
target would be truncated and overwritten with our pid).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from shriven.errors import StoreLockedError

LOCK_FILE = ".shriven.lock"


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise StoreLockedError naming the process that holds it."""
        if self._fd is not None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise StoreLockedError(
                f"{self.path} is a symbolic link; shriven will not follow it (it would overwrite "
                "the file it points to): remove the link and start again"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreLockedError(
                f"another shriven run (pid {holder}) is recording into {self.data_dir}; stop it "
                "first, or record elsewhere with --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

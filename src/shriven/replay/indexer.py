"""The columnar book index written as the recorder seals tick segments, off its hot path.

``SidecarIndexer.submit(segment)`` is what the tick WAL calls when rotation seals a segment: it
queues the path and returns at once. One worker thread takes the queue in order and writes each
sidecar (:func:`shriven.replay.columns.write_sidecar`) in a child process at low priority
(``python -m shriven.replay.indexer SEGMENT``): building a 32 MB segment's columns is seconds of
Python, which on a thread of the recorder would hold the GIL against the recorder loop. The
worker only waits on the child, so recording never waits on indexing.

Bounded: at most ``backlog`` segments wait; more are dropped (counted), and each child gets
``timeout_s``. A segment that could not be indexed (damaged, timed out, dropped) is counted and
logged, and stays without a sidecar: ``replay book`` then reads it record by record and
``shriven replay index`` writes it later.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from shriven.logging import get_logger

log = get_logger("shriven.replay.indexer")

_STOP = Path()  # the queue's end marker


@dataclass(slots=True)
class IndexerCounts:
    """Sealed segments handed to the indexer, by outcome."""

    written: int = 0
    valid: int = 0  # a valid sidecar was already there
    failed: int = 0  # damaged segment, child error or timeout
    dropped: int = 0  # the backlog was full


class SidecarIndexer:
    """Writes the sidecar of each segment given to :meth:`submit`, one at a time, in a child
    process; :attr:`counts` says how each went. :meth:`close` stops it (bounded)."""

    def __init__(self, *, backlog: int = 8, timeout_s: float = 600.0) -> None:
        self.counts = IndexerCounts()
        self._timeout_s = timeout_s
        self._queue: queue.Queue[Path] = queue.Queue(maxsize=backlog)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._thread = threading.Thread(target=self._work, name="book-index", daemon=True)
        self._thread.start()

    def submit(self, segment: Path) -> None:
        """Queue ``segment`` for indexing; never blocks (a full backlog drops it, counted)."""
        with self._lock:
            try:
                self._queue.put_nowait(segment)
            except queue.Full:
                self.counts.dropped += 1
                log.warning("book index backlog full", segment=str(segment))
                return
            self._pending += 1

    def wait_idle(self, timeout_s: float) -> bool:
        """True once every submitted segment has been handled (within ``timeout_s``)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop after the segment in hand (or its timeout); segments still queued are left to
        ``shriven replay index``."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            with self._lock:
                self._pending -= 1
        try:
            self._queue.put(_STOP, timeout=timeout_s)
        except queue.Full:  # pragma: no cover - the worker is stuck past its own timeout
            return
        self._thread.join(timeout_s)

    def _work(self) -> None:
        while (segment := self._queue.get()) is not _STOP:
            outcome = self._index(segment)
            with self._idle:
                setattr(self.counts, outcome, getattr(self.counts, outcome) + 1)
                self._pending -= 1
                self._idle.notify_all()

    def _index(self, segment: Path) -> str:
        cmd = [sys.executable, "-m", "shriven.replay.indexer", str(segment)]
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=self._timeout_s, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("book index failed", segment=str(segment), error=str(exc))
            return "failed"
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
            log.warning("book index failed", segment=str(segment), error=reason[:200])
            return "failed"
        return "written" if done.stdout.strip() == "written" else "valid"


def main(argv: list[str]) -> int:
    """``python -m shriven.replay.indexer SEGMENT``: write its sidecar; prints ``written`` or
    ``valid``; exit 1 with one line on stderr when the segment cannot be indexed."""
    from shriven.errors import ShrivenError
    from shriven.replay.columns import write_sidecar

    if len(argv) != 1:
        print("usage: python -m shriven.replay.indexer SEGMENT", file=sys.stderr)
        return 2
    os.nice(10)  # behind the recorder for the CPU
    try:
        print("written" if write_sidecar(Path(argv[0])) else "valid")
    except (ShrivenError, OSError) as exc:
        print(f"cannot index {argv[0]}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

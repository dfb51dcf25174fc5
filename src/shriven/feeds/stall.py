"""The no-message watchdog of a connection's read loop: a read that waits too long is cancelled.

It does what ``async with asyncio.timeout(secs)`` around each read does (cancel the reading
task, then ``uncancel`` it and report a stall), but arms one timer per ``secs`` instead of one
per message. Entering and leaving ``asyncio.timeout`` for every message (a timer pushed on the
loop's heap and cancelled again) was about 14% of the Binance feed's CPU in a profile of
benchmarks/recorder_vs_cryptofeed.py.
"""

from __future__ import annotations

import asyncio

__all__ = ["StallWatch"]

_EARLY_S = 0.001  # a timer may run up to the loop's clock resolution before its time


class StallWatch:
    """Watches the current task's reads: call :meth:`reading` before each read, :meth:`done`
    after it. If one read has waited ``secs``, the task is cancelled and :meth:`stalled` then
    tells that CancelledError apart from a cancellation from outside."""

    __slots__ = ("_cancelling", "_fired", "_handle", "_loop", "_secs", "_since", "_task")

    def __init__(self, secs: float) -> None:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("StallWatch needs a running task")
        self._task = task
        self._cancelling = task.cancelling()
        self._secs = secs
        self._since: float | None = None  # loop time the current read began; None between reads
        self._fired = False
        self._handle: asyncio.TimerHandle | None = self._loop.call_at(
            self._loop.time() + secs, self._check
        )

    def reading(self) -> None:
        self._since = self._loop.time()

    def done(self) -> None:
        self._since = None

    def stalled(self) -> bool:
        """Called on CancelledError from a read: True (and the cancellation taken back) when the
        watchdog caused it and nothing else cancelled the task too."""
        if not self._fired:
            return False
        self._fired = False
        return self._task.uncancel() <= self._cancelling

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        now = self._loop.time()
        since = self._since
        if since is not None and now >= since + self._secs - _EARLY_S:
            self._fired = True
            self._handle = None
            self._task.cancel()
            return
        start = now if since is None else since
        self._handle = self._loop.call_at(start + self._secs, self._check)

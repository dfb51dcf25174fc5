"""The Kite feed held disconnected outside a daily window and on NSE non-trading days
(``SHRIVEN_KITE_WINDOW``): no login, no instruments download, no ticker connection on a holiday.

Inside the window the feed is built as ``add_kite`` builds it (login, instruments, plan) and
runs with its universe job; at the window's end both are cancelled (the ticker writes its
``disconnected`` marker) and the feed is held again until the next trading day's window. The
next window logs in afresh: Kite's token does not outlive the day.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from datetime import time as clock_time

from shriven.calendar import nse_calendar, window_state
from shriven.clock import IST
from shriven.feeds.base import FeedAdapter, FeedStats
from shriven.logging import get_logger

log = get_logger("shriven.app.kite_window")

_RECHECK_S = 60.0  # a held feed looks at the clock (and the calendar) again this often
Starter = Callable[[], Awaitable[tuple[FeedAdapter, Callable[[], Awaitable[None]]]]]


class WindowedFeed:
    """A feed adapter for the pipeline that runs the real one only inside the window."""

    venue = "kite"

    def __init__(
        self,
        start: Starter,
        window: tuple[clock_time, clock_time],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._start = start
        self._window = window
        self._clock = clock
        self._own = FeedStats("kite")
        self._inner: FeedAdapter | None = None

    @property
    def stats(self) -> FeedStats:
        return self._inner.stats if self._inner is not None else self._own

    def _hold(self, until: float) -> None:
        when = datetime.fromtimestamp(until, IST).strftime("%Y-%m-%d %H:%M IST")
        reason = f"outside the Kite window or not an NSE trading day; connects at {when}"
        if self._own.held != reason:
            log.info("kite feed held", until=when)
        self._own.held = reason

    async def run(self) -> None:
        while True:
            inside, change = window_state(nse_calendar(), self._window, self._clock())
            if not inside:
                self._hold(change)
                await asyncio.sleep(max(0.05, min(_RECHECK_S, change - self._clock())))
                continue
            self._own.held = ""
            feed, job = await self._start()
            self._inner = feed
            tasks = [asyncio.create_task(feed.run()), asyncio.create_task(job())]
            try:
                await asyncio.wait(tasks, timeout=max(0.0, change - self._clock()),
                                   return_when=asyncio.FIRST_EXCEPTION)  # fmt: skip
            finally:
                for t in tasks:
                    t.cancel()
                for t in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t
                self._own = FeedStats("kite")
                self._inner = None
            failed = [t.exception() for t in tasks if not t.cancelled() and t.exception()]
            if failed:
                raise failed[0]  # type: ignore[misc]
            log.info("kite window closed; feed held until the next one")

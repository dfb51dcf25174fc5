"""Periodic checks while running: stale feeds (counted, logged once per episode) and the one-line
console status."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from shriven.feeds.base import FeedStats
from shriven.logging import get_logger
from shriven.pipeline.health import HealthSources, disk_free, evaluate, feed_is_stale
from shriven.sizes import human_bytes

log = get_logger("shriven.pipeline.monitor")


class Monitor:
    def __init__(
        self,
        sources: HealthSources,
        status_every_s: float = 5.0,
        check_every_s: float = 1.0,
        quiet: bool = False,
        out: TextIO | None = None,
    ) -> None:
        self._src = sources
        self._status_every = status_every_s
        self._check_every = check_every_s
        self._quiet = quiet
        self._out = out
        self._stale: set[str] = set()
        self._last_counts: dict[str, int] = {}
        self._last_t = time.monotonic()

    async def run(self) -> None:
        next_status = time.monotonic() + self._status_every
        self._last_t = time.monotonic()
        self._last_counts = {f.venue: f.records for f in self._src.feeds()}
        while True:
            await asyncio.sleep(self._check_every)
            self.check_stale(self._src.feeds)
            if not self._quiet and time.monotonic() >= next_status:
                next_status = time.monotonic() + self._status_every
                print(self.status_line(), file=self._out or sys.stderr, flush=True)

    def check_stale(self, feeds: Callable[[], Sequence[FeedStats]]) -> None:
        now = time.time_ns()
        episodes = self._src.stats.stale_episodes
        for f in feeds():
            last_data = self._src.stats.last_data_ns.get(f.venue, 0)
            stale = feed_is_stale(f, last_data, now, self._src.started_ns, self._src.stale_secs)
            if stale and f.venue not in self._stale:
                self._stale.add(f.venue)
                episodes[f.venue] = episodes.get(f.venue, 0) + 1
                log.warning(
                    "feed is stale: no data while its market is open",
                    venue=f.venue,
                    connected=f.connected,
                    seconds=self._src.stale_secs,
                )
            elif not stale and f.venue in self._stale:
                self._stale.discard(f.venue)
                log.info("feed is receiving again", venue=f.venue)

    def status_line(self) -> str:
        """e.g. ``ok | kite up 1,204/s | binance up 310/s | queue 0/100000 | wal 12.3 MB | ...``"""
        now = time.monotonic()
        dt = max(1e-6, now - self._last_t)
        self._last_t = now
        parts = []
        report = evaluate(self._src)
        parts.append(str(report["status"]))
        for f in self._src.feeds():
            prev = self._last_counts.get(f.venue, f.records)
            self._last_counts[f.venue] = f.records
            state = "up" if f.connected else "DOWN"
            parts.append(f"{f.venue} {state} {(f.records - prev) / dt:,.0f}/s")
        q = self._src.queue
        parts.append(f"queue {len(q)}/{q.maxsize}")
        s = self._src.stats
        parts.append(f"written {s.records_written:,} ({human_bytes(s.bytes_written)})")
        parts.append(f"books {s.books}")
        src = self._src
        free = src.free_bytes() if src.free_bytes is not None else disk_free(src.data_dir)
        parts.append(f"disk {human_bytes(free)} free")
        problems = report["problems"]
        if problems:
            parts.append("; ".join(problems))  # type: ignore[arg-type]
        return " | ".join(parts)

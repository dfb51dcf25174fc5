"""What /health reports, how the overall state is decided, and the aiohttp server for it.

Overall state (HTTP status):

- ``failing`` (503): the tick WAL cannot be written, the writer task has stopped, free disk is below
  ``MIN_FREE_BYTES``, or no feed has been connected for ``stale_feed_secs`` continuously (since
  start if none ever connected; since the last one went down otherwise). A reconnect shorter than
  that is ``degraded`` at most.
- ``degraded`` (200): a feed is disconnected or stale while its market is open, records were
  dropped, the queue is more than 80% full, free disk is below ``LOW_FREE_BYTES``, a book is
  crossed right now, or a feed task was restarted after an unexpected exception.
- ``ok`` (200): none of the above.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from shriven.errors import ConfigError
from shriven.feeds.base import FeedStats
from shriven.logging import get_logger
from shriven.pipeline.metrics import CONTENT_TYPE, PipelineMetrics
from shriven.pipeline.queue import RecordQueue
from shriven.pipeline.stats import PipelineStats
from shriven.pipeline.validate import market_open

log = get_logger("shriven.pipeline.health")

MIN_FREE_BYTES = 256 * 1024 * 1024
LOW_FREE_BYTES = 2 * 1024 * 1024 * 1024
QUEUE_HIGH_FRACTION = 0.8


def disk_free(path: Path) -> int:
    """Free bytes on the file system holding ``path`` (or its nearest existing parent)."""
    p = path.resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return 0


def feed_is_stale(
    stats: FeedStats, last_data_ns: int, now_ns: int, started_ns: int, stale_secs: float
) -> bool:
    """No market data (ticks, trades, diffs; heartbeats do not count) for ``stale_secs`` while
    the feed's market is open, counting from start if none ever came."""
    if not market_open(stats.venue, now_ns / 1e9):
        return False
    since = last_data_ns or started_ns
    return (now_ns - since) / 1e9 > stale_secs


@dataclass(slots=True)
class HealthSources:
    """Everything /health reads; callables so the server never holds stale references."""

    feeds: Callable[[], Sequence[FeedStats]]
    queue: RecordQueue
    stats: PipelineStats
    wal_ok: Callable[[], bool]
    writer_alive: Callable[[], bool]
    data_dir: Path
    stale_secs: float
    started_ns: int
    # Free bytes on the data disk; None = measure data_dir (the seam tests use to fake a disk).
    free_bytes: Callable[[], int] | None = None
    # Extra sections a run adds (e.g. "publisher"): name -> () -> (section, problems).
    sections: dict[str, Callable[[], tuple[dict[str, object], list[str]]]] = field(
        default_factory=dict
    )


def evaluate(src: HealthSources, now_ns: int | None = None) -> dict[str, object]:
    now = time.time_ns() if now_ns is None else now_ns
    feeds_out: dict[str, dict[str, object]] = {}
    problems: list[str] = []
    failing: list[str] = []
    any_connected = False
    feeds = list(src.feeds())
    for f in feeds:
        last_data = src.stats.last_data_ns.get(f.venue, 0)
        held = bool(f.held)
        stale = not held and feed_is_stale(f, last_data, now, src.started_ns, src.stale_secs)
        is_open = market_open(f.venue, now / 1e9)
        any_connected = any_connected or f.connected or held
        feeds_out[f.venue] = {
            "connected": f.connected,
            "held": f.held or None,
            "market_open": is_open,
            "stale": stale,
            "last_message_age_s": round((now - f.last_message_ns) / 1e9, 3)
            if f.last_message_ns
            else None,
            "last_data_age_s": round((now - last_data) / 1e9, 3) if last_data else None,
            "messages": f.messages,
            "bytes": f.bytes,
            "records": f.records,
            "reconnects": f.reconnects,
            "parse_errors": f.parse_errors,
            "gaps": f.gaps,
            "task_restarts": f.task_restarts,
        }
        if f.task_restarts:
            problems.append(f"{f.venue} feed task restarted after an internal error")
        if not f.connected and is_open and not held:
            problems.append(f"{f.venue} disconnected")
        if stale:
            problems.append(f"{f.venue} stale")
    since_start = (now - src.started_ns) / 1e9
    if feeds and not any_connected:
        all_down_ns = max(f.down_since_ns or src.started_ns for f in feeds)
        if (now - all_down_ns) / 1e9 > src.stale_secs:
            failing.append("no feed connected")

    free = src.free_bytes() if src.free_bytes is not None else disk_free(src.data_dir)
    wal_ok = src.wal_ok()
    writer_alive = src.writer_alive()
    if not wal_ok:
        failing.append("WAL not writable")
    if not writer_alive:
        failing.append("writer stopped")
    if free < MIN_FREE_BYTES:
        failing.append("disk nearly full")
    elif free < LOW_FREE_BYTES:
        problems.append("disk space low")

    q = src.queue
    depth = len(q)
    if depth > QUEUE_HIGH_FRACTION * q.maxsize:
        problems.append("queue nearly full")
    if q.stats.dropped:
        problems.append("records dropped")
    s = src.stats
    if s.crossed_now:
        problems.append(f"{s.crossed_now} book(s) crossed")

    extra: dict[str, object] = {}
    for name, section in src.sections.items():
        extra[name], section_problems = section()
        problems.extend(section_problems)

    state = "failing" if failing else ("degraded" if problems else "ok")
    report: dict[str, object] = {
        "status": state,
        "problems": failing + problems,
        "uptime_s": round(since_start, 3),
        "feeds": feeds_out,
        "queue": {
            "depth": depth,
            "capacity": q.maxsize,
            "policy": q.policy,
            "high_water": q.stats.high_water,
            "full_waits": q.stats.waits,
            "soft_limit": q.soft_limit,
            "paced": q.stats.paced,
            "dropped": q.stats.dropped,
        },
        "wal": {
            "writable": wal_ok and writer_alive,
            "error": s.wal_error or None,  # the root cause, kept until a write succeeds
            "last_error": s.wal_last_error or None,
            "disk_free_bytes": free,
            "records_written": s.records_written,
            "bytes_written": s.bytes_written,
            "last_durable_age_s": round((now - s.last_durable_ns) / 1e9, 3)
            if s.last_durable_ns
            else None,
        },
        "books": {
            "count": s.books,
            "crossed_now": s.crossed_now,
            "crossed_updates": s.crossed_books,
            "snapshots_written": s.snapshots_written,
        },
        "validation": {
            "invalid_records": dict(s.invalid_by_kind),
            "gaps": dict(s.gaps_by_venue),
            "stale_episodes": dict(s.stale_episodes),
            "recorder_errors": dict(s.recorder_errors),
        },
        **extra,
    }
    return report


def http_status(state: str) -> int:
    return 503 if state == "failing" else 200


class HealthServer:
    """aiohttp server on loopback with ``/health`` (JSON) and ``/metrics`` (Prometheus text)."""

    def __init__(self, sources: HealthSources, metrics: PipelineMetrics, host: str, port: int):
        self._sources = sources
        self._metrics = metrics
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics_handler)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ConfigError(
                f"cannot serve /health on {self._host}:{self._port}: {exc.strerror}; choose "
                "another port with --health-port or SHRIVEN_HEALTH_PORT (0 picks a free one)"
            ) from None
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._port
        url = f"http://{self._host}:{self.port}"
        log.info("health server listening", url=url)
        return url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _health(self, _request: web.Request) -> web.Response:
        report = evaluate(self._sources)
        return web.json_response(report, status=http_status(str(report["status"])))

    async def _metrics_handler(self, _request: web.Request) -> web.Response:
        body = self._metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

"""The recorder process: feeds -> queue -> writer, plus health, monitor and shutdown.

Shutdown (first SIGINT/SIGTERM, ``--duration`` elapsed, or every feed gone): the queue stops
bounding so nothing an adapter holds is lost, the adapters are cancelled (they write their
disconnected markers), a ``stopped`` marker is queued, the writer drains the queue, takes a final
snapshot, fsyncs, writes metadata and closes the segments. A second signal exits at once with
status 130; the WAL recovers its torn tail on the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from shriven.book import BookKeeper
from shriven.config import PipelineConfig
from shriven.errors import ShrivenError
from shriven.events import SeqCounter, Status, StatusKind, status_detail
from shriven.feeds.base import FeedAdapter, FeedStats
from shriven.logging import get_logger
from shriven.pipeline.health import HealthServer, HealthSources, disk_free, feed_is_stale
from shriven.pipeline.lock import DataDirLock
from shriven.pipeline.metrics import PipelineMetrics
from shriven.pipeline.monitor import Monitor
from shriven.pipeline.queue import RecordQueue
from shriven.pipeline.recorder import PayloadTap, RecorderLoop, RecordTap, StoreFactory
from shriven.pipeline.stats import PipelineStats
from shriven.pipeline.validate import market_open
from shriven.wal import StoreWriter, WalOptions

log = get_logger("shriven.pipeline")

_ADAPTER_STOP_TIMEOUT_S = 10.0
_FEED_RESTART_INITIAL_S = 1.0
_FEED_RESTART_MAX_S = 30.0


def store_factory(data_dir: Path, wal: WalOptions) -> StoreFactory:
    """Open ``data_dir`` (recovering it) with ``wal``; recorder.py says who fsyncs when."""
    return lambda: StoreWriter(data_dir, wal)


class Pipeline:
    """Owns the queue, writer, books, metrics and the tasks around them for one run."""

    def __init__(
        self,
        config: PipelineConfig,
        *,
        wal: WalOptions | None = None,
        open_store: StoreFactory | None = None,
        health_host: str = "127.0.0.1",
        health_port: int | None = 0,
        quiet: bool = True,
        status_every_s: float = 5.0,
        free_bytes: Callable[[], int] | None = None,
    ) -> None:
        """The store opens with ``open_store``, else in ``config.data_dir`` with ``wal`` (see
        ``shriven.app.startup.wal_options``). ``free_bytes`` reads the data disk's free space
        (default: the file system of ``data_dir``); /health, /metrics and the console line all
        use it."""
        if open_store is None:
            if wal is None:
                raise TypeError("Pipeline needs wal= (the WAL's options) or open_store=")
            open_store = store_factory(Path(config.data_dir), wal)
        self.config = config
        self._free_bytes = free_bytes
        self._lock = DataDirLock(Path(config.data_dir))
        self.system_seq = SeqCounter()
        self.queue = RecordQueue(
            config.max_queue_size,
            config.queue_full_policy,
            self.system_seq,
            soft_limit=config.queue_soft_limit,
        )
        self.stats = PipelineStats(started_ns=time.time_ns())
        self.metrics = PipelineMetrics()
        self.books = BookKeeper()
        self.writer = RecorderLoop(
            self.queue,
            open_store,
            self.books,
            config,
            self.metrics,
            self.stats,
            self.system_seq,
        )
        self.feeds: list[FeedAdapter] = []
        self.queue.on_drop = self._on_drop
        self._resyncs: set[asyncio.Task[None]] = set()
        self._extra: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        self._feed_tasks: list[asyncio.Task[None]] = []
        self._other_tasks: list[asyncio.Task[None]] = []
        self._writer_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self._signals = 0
        self.exit_code = 0
        self.sources = HealthSources(
            feeds=self.feed_stats,
            queue=self.queue,
            stats=self.stats,
            wal_ok=lambda: self.writer.wal_ok,
            writer_alive=self._writer_alive,
            data_dir=Path(config.data_dir),
            stale_secs=config.stale_feed_secs,
            started_ns=self.stats.started_ns,
            free_bytes=self._disk_free,
        )
        self.metrics.attach(
            self.feed_stats, self.queue, self.stats, self._disk_free, self._feed_state
        )
        self.health = (
            HealthServer(self.sources, self.metrics, health_host, health_port)
            if health_port is not None
            else None
        )
        self.health_url = ""
        self.monitor = Monitor(self.sources, status_every_s=status_every_s, quiet=quiet)

    # ------------------------------------------------------------------ wiring

    def add_feed(self, feed: FeedAdapter) -> None:
        self.feeds.append(feed)

    def add_tap(self, tap: RecordTap, *, durable: bool) -> None:
        """See :meth:`RecorderLoop.add_tap`: records as written, or once fsynced."""
        self.writer.add_tap(tap, durable=durable)

    def add_snapshot_tap(self, tap: RecordTap) -> None:
        """See :meth:`RecorderLoop.add_snapshot_tap`: each round of book snapshots, once durable."""
        self.writer.add_snapshot_tap(tap)

    def add_payload_tap(self, tap: PayloadTap, *, prompt: bool = False) -> None:
        """See :meth:`RecorderLoop.add_payload_tap`: each written batch's msgpack payload
        (``prompt``: as soon as it is written, no batch window)."""
        self.writer.add_payload_tap(tap, prompt=prompt)

    def add_task(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        """A background job cancelled at shutdown before the feeds (e.g. universe re-centring)."""
        self._extra.append((name, factory))

    def feed_stats(self) -> list[FeedStats]:
        return [f.stats for f in self.feeds]

    def _disk_free(self) -> int:
        if self._free_bytes is not None:
            return self._free_bytes()
        return disk_free(Path(self.config.data_dir))

    def _feed_state(self) -> dict[str, tuple[bool, bool]]:
        """venue -> (market open, stale) now, for /metrics (the same rules as /health)."""
        now = time.time_ns()
        src = self.sources
        return {
            f.venue: (
                market_open(f.venue, now / 1e9),
                feed_is_stale(
                    f, self.stats.last_data_ns.get(f.venue, 0), now, src.started_ns, src.stale_secs
                ),
            )
            for f in self.feed_stats()
        }

    def _writer_alive(self) -> bool:
        t = self._writer_task
        return t is None or not t.done() or self._stop.is_set()

    def _on_drop(self, stream: str, instruments: set[str]) -> None:
        """Records were dropped: books that cannot be rebuilt from later records (Binance diffs)
        get a fresh venue snapshot from their feed."""
        for feed in self.feeds:
            resync = getattr(feed, "request_resync", None)
            if feed.venue != stream or resync is None or self._stop.is_set():
                continue
            for symbol in sorted(instruments):
                task = asyncio.get_running_loop().create_task(
                    resync(symbol, "records dropped by the pipeline queue")
                )
                self._resyncs.add(task)
                task.add_done_callback(self._resyncs.discard)

    def request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self._stop_reason = reason
            log.info("stopping", reason=reason)
            self._stop.set()

    # ------------------------------------------------------------------ running

    def lock_store(self) -> None:
        """Claim the data directory (StoreLockedError when another recorder has it). ``start``
        does it too; call it first to fail before logging in or connecting anything."""
        self._lock.acquire()

    async def start(self) -> None:
        """Claim the data directory, start the health server (first: a port that cannot be bound
        must not leave an empty segment behind), open the store (recovering it), then the writer,
        monitor and feeds."""
        self._lock.acquire()
        try:
            if self.health is not None:
                self.health_url = await self.health.start()
            await self.writer.open()
        except BaseException:
            if self.health is not None:
                await self.health.stop()
            self._lock.release()
            raise
        self.queue.put_nowait(
            self._system(StatusKind.STARTED, detail=status_detail(pid=os.getpid()))
        )
        self._writer_task = asyncio.create_task(self.writer.run(), name="shriven-writer")
        self._other_tasks.append(asyncio.create_task(self.monitor.run(), name="shriven-monitor"))
        for name, factory in self._extra:
            self._other_tasks.append(asyncio.create_task(_guard(name, factory), name=name))
        for feed in self.feeds:
            task = asyncio.create_task(self._supervise(feed), name=f"feed-{feed.venue}")
            task.add_done_callback(self._feed_done)
            self._feed_tasks.append(task)
        log.info(
            "recording",
            feeds=[f.venue for f in self.feeds],
            data_dir=str(self.config.data_dir),
            health=self.health_url or None,
        )

    async def run(self, duration: float | None = None) -> int:
        """Start; wait for a signal, the duration, a writer failure or every feed ending; stop."""
        await self.start()
        waiters = [asyncio.create_task(self._stop.wait())]
        if self._writer_task is not None:
            waiters.append(self._writer_task)  # type: ignore[arg-type]
        try:
            await asyncio.wait(waiters, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiters[0].cancel()
        if not self._stop.is_set():
            self.request_stop("duration elapsed" if duration is not None else "writer stopped")
        await self.shutdown()
        return self.exit_code

    async def _supervise(self, feed: FeedAdapter) -> None:
        """Run ``feed``; if it dies of an unexpected exception (a bug some input met), count it
        where /health shows it and start it again after a back-off. A configuration error
        ends it: restarting cannot fix that."""
        delay = _FEED_RESTART_INITIAL_S
        while True:
            started = time.monotonic()
            try:
                await feed.run()
                return
            except ShrivenError:
                raise
            except Exception as exc:
                if self._stop.is_set():
                    raise
                feed.stats.task_restarts += 1
                feed.stats.connected = False
                log.error(
                    "feed task failed; restarting it",
                    feed=feed.venue,
                    error=repr(exc)[:200],
                    restarts=feed.stats.task_restarts,
                    in_s=delay,
                )
            if time.monotonic() - started > _FEED_RESTART_MAX_S:
                delay = _FEED_RESTART_INITIAL_S
            await asyncio.sleep(delay)
            delay = min(delay * 2, _FEED_RESTART_MAX_S)

    def _feed_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("feed stopped", feed=task.get_name(), error=str(exc) or type(exc).__name__)
        if all(t.done() for t in self._feed_tasks) and not self._stop.is_set():
            self.exit_code = 1
            self.request_stop("every feed has stopped")

    async def shutdown(self) -> None:
        self._stop.set()
        q = self.queue
        q.close()
        await asyncio.sleep(0)  # let adapters woken from a full queue append their record
        for t in [*self._other_tasks, *self._resyncs]:
            t.cancel()
        for t in self._feed_tasks:
            t.cancel()
        pending = [t for t in self._feed_tasks if not t.done()]
        if pending:
            _done, still = await asyncio.wait(pending, timeout=_ADAPTER_STOP_TIMEOUT_S)
            if still:
                log.warning("feeds did not stop in time", feeds=[t.get_name() for t in still])
        q.put_nowait(
            self._system(StatusKind.STOPPED, detail=status_detail(reason=self._stop_reason))
        )
        q.finish()
        writer_task = self._writer_task
        if writer_task is not None:
            try:
                await writer_task
            except Exception as exc:
                self.exit_code = 1
                log.error("writer failed", error=str(exc) or type(exc).__name__)
        try:
            await self.writer.finish()
        except Exception as exc:
            self.exit_code = 1
            log.error("could not close the WAL cleanly", error=str(exc) or type(exc).__name__)
        await asyncio.gather(*self._other_tasks, return_exceptions=True)
        if self.health is not None:
            await self.health.stop()
        self._lock.release()
        s = self.stats
        log.info(
            "stopped",
            records=s.records_written,
            bytes=s.bytes_written,
            snapshots=s.snapshots_written,
            dropped=q.stats.dropped,
        )

    def _system(self, kind: str, instrument: str = "", detail: str = "") -> Status:
        return Status(time.time_ns(), self.system_seq.next(), "system", kind, instrument, detail)

    # ------------------------------------------------------------------ signals

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals == 1:
            print(
                f"shriven: {sig.name}: finishing (press Ctrl-C again to exit at once)",
                file=sys.stderr,
                flush=True,
            )
            self.request_stop(sig.name)
            return
        print("shriven: exiting at once; the WAL recovers on the next start", file=sys.stderr)
        os._exit(130)


async def _guard(name: str, factory: Callable[[], Awaitable[None]]) -> None:
    """Run a background job; log (never propagate) a failure so recording carries on."""
    try:
        await factory()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.error("background job failed", job=name, error=str(exc) or type(exc).__name__)

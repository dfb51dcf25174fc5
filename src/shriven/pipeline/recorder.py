"""The writer task: queue -> tick WAL (durable) and books -> minute snapshots -> LOB WAL.

One task owns the books and the store. WAL appends and fsyncs run on one dedicated thread (so
frames stay in order and the event loop keeps receiving while zstd and the disk work); the books
are updated on the loop meanwhile, from the same batch. Snapshot rounds (the LOB WAL, its fsync,
metadata.json) are written on a second thread, and the writer goes on taking ticks meanwhile:
awaited, each round held every record arriving during its two fsyncs in the queue, and those
rounds set the peaks of records in flight (benchmarks/soak_rss.py).

Durability is driven from here rather than by the WAL's own timer: ``always`` syncs after every
frame, ``interval`` at most ``fsync_interval_ms`` after a write, ``never`` leaves it to the OS until
shutdown. The store is opened with the WAL's ``caller`` fsync policy (``never`` stays ``never``):
the WAL fsyncs on its own only at segment creation, rotation and close. Knowing the exact moment
data became durable is what makes the receive-to-durable latency and fsync histograms honest.

Taps (``add_tap``) let other parts of a run see the records without touching the WAL path: a
``written`` tap gets each batch once it is in the WAL file (a live server fans it out), a
``durable`` tap once it is also fsynced (a publisher may only send what a crash cannot lose).
A tap runs on the event loop and must only hand the batch on (e.g. ``put_nowait``); an exception
from one is counted under ``recorder_errors["tap"]`` and never reaches the recorder.

Snapshots are aligned to the clock: the round for boundary B holds the books after every record
received at or before B (a batch straddling B is split), and is stamped ``recv_ns = B``, so replay
can rebuild exactly the same book at B.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from shriven.book import BookKeeper
from shriven.config import PipelineConfig
from shriven.errors import WalError
from shriven.events import (
    VENUE_SYMBOL_TYPES,
    BinanceDepth,
    BinanceTrade,
    BookSnapshot,
    KiteTick,
    Record,
    SeqCounter,
    Status,
    StatusKind,
    _kitetick,
    encode_record,
    kite_packet,
)
from shriven.logging import get_logger
from shriven.pipeline.metrics import PipelineMetrics
from shriven.pipeline.queue import RecordQueue
from shriven.pipeline.stats import PipelineStats
from shriven.pipeline.validate import check_depth, check_record
from shriven.wal import StoreWriter
from shriven.wal.store import StreamCounts

log = get_logger("shriven.pipeline.recorder")

_SNAPSHOT_GRACE_S = 0.25  # wait this long past a boundary for records stamped before it
_IDLE_TICK_S = 0.5
_WAL_RETRY_S = 1.0
_SHUTDOWN_WAL_ATTEMPTS = 5

StoreFactory = Callable[[], StoreWriter]
RecordTap = Callable[[Sequence[Record]], None]
PayloadTap = Callable[[bytes], None]
T = TypeVar("T")


class RecorderLoop:
    def __init__(
        self,
        queue: RecordQueue,
        open_store: StoreFactory,
        books: BookKeeper,
        config: PipelineConfig,
        metrics: PipelineMetrics,
        stats: PipelineStats,
        system_seq: SeqCounter | None = None,
    ) -> None:
        self.queue = queue
        self.books = books
        self.config = config
        self.metrics = metrics
        self.stats = stats
        self._open_store = open_store
        self._store: StoreWriter | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shriven-wal")
        self._lob_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shriven-lob")
        self._round: asyncio.Task[None] | None = None  # the snapshot round being written
        self._interval_ns = config.snapshot_interval_secs * 1_000_000_000
        self._next_snapshot_ns = 0
        self._unsynced_oldest_ns = 0  # oldest recv_ns appended but not yet durable
        self._last_sync = time.monotonic()
        self._sync_interval_s = config.fsync_interval_ms / 1000.0
        # The system stream's counter, for the status markers this writer adds.
        self.system_seq = system_seq if system_seq is not None else SeqCounter()
        self.wal_ok = True
        self._written_taps: list[RecordTap] = []
        self._durable_taps: list[RecordTap] = []
        self._snapshot_taps: list[RecordTap] = []
        self._payload_taps: list[PayloadTap] = []
        self._prompt = False  # a tap wants each batch at once: no batch window
        self._not_durable: list[Sequence[Record]] = []  # written batches awaiting an fsync

    def add_tap(self, tap: RecordTap, *, durable: bool) -> None:
        """Call ``tap(batch)`` after each batch is written (``durable=False``) or after it is
        also fsynced (``durable=True``); batches arrive in WAL order."""
        (self._durable_taps if durable else self._written_taps).append(tap)

    def add_snapshot_tap(self, tap: RecordTap) -> None:
        """Call ``tap(snapshots)`` with each round of book snapshots once it is in the LOB WAL
        (and fsynced, unless the fsync policy is ``never``)."""
        self._snapshot_taps.append(tap)

    def add_payload_tap(self, tap: PayloadTap, *, prompt: bool = False) -> None:
        """Call ``tap(payload)`` after each batch is written, with the frame's msgpack payload
        (``events.encode_batch`` of the batch, as the WAL encoded it): for a consumer in another
        process, which then costs this loop no encoding. ``prompt`` (a live server): the writer
        no longer waits up to ``batch_max_ms`` for a batch to fill, as with fsync ``always``;
        a frame holds what arrived while the previous one was written. Add before :meth:`run`."""
        self._payload_taps.append(tap)
        self._prompt = self._prompt or prompt

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        self._store = await self._in_pool(self._open_store)
        self._next_snapshot_ns = self._boundary_after(time.time_ns())

    def _boundary_after(self, t_ns: int) -> int:
        return (t_ns // self._interval_ns + 1) * self._interval_ns

    async def run(self) -> None:
        """Write batches until the queue is finished and drained."""
        cfg = self.config
        q = self.queue
        # Group commit: with an fsync after every frame, waiting for a batch to fill only adds
        # latency (the 5 ms window was most of receive-to-durable). Instead each frame holds
        # whatever arrived while the previous write and fsync were in flight. The same for a
        # live server's tap: the window was most of receipt-to-tap (a Kite message is one
        # batch at 2,000 ticks/s either way).
        prompt = cfg.fsync_policy == "always" or self._prompt
        max_wait = 0.0 if prompt else cfg.batch_max_ms / 1000.0
        while True:
            batch = await q.get_batch(cfg.batch_max_records, max_wait, self._idle_timeout())
            n = len(batch)
            if n:
                await self._handle(batch)
            # Let go of the written batch before the fsync and the wait for the next one: held,
            # it and the records arriving meanwhile (a burst when the fsync is slow) are both in
            # memory, which raises the allocator's high water (RSS) for good.
            del batch
            if not n and q.finished and not len(q):
                return
            await self._housekeeping()

    async def finish(self) -> None:
        """Final snapshot, fsync, metadata, close. Call after :meth:`run` returned."""
        try:
            if self._store is not None:
                await self._snapshot(time.time_ns(), final=True)
                await self._sync(force=True)
                await self._in_pool(self._store.write_metadata)
                await self._in_pool(self._store.close)
                self._store = None
        finally:
            self._pool.shutdown(wait=True)
            self._lob_pool.shutdown(wait=True)

    # ------------------------------------------------------------------ per batch

    async def _handle(self, batch: list[Record]) -> None:
        self.metrics.batch_size.observe(len(batch))
        while batch:
            nxt = self._next_snapshot_ns
            cut = len(batch)
            if batch[-1].recv_ns > nxt or batch[0].recv_ns > nxt:
                cut = _first_after(batch, nxt)
            if cut:
                await self._write_and_apply(batch[:cut] if cut < len(batch) else batch)
            if cut == len(batch):
                return
            await self._snapshot(nxt)
            batch = batch[cut:]
            # After a silence (or a clock jump) spanning several boundaries, one round stands
            # for all of them: the books did not change in between.
            first = batch[0].recv_ns
            if first > self._next_snapshot_ns:
                self._next_snapshot_ns = self._boundary_after(first - 1)

    async def _write_and_apply(self, batch: list[Record]) -> None:
        loop = asyncio.get_running_loop()
        append = loop.run_in_executor(self._pool, self._append_ticks, batch)
        try:
            self._apply(batch)
        finally:
            nbytes, write_s, counts = await self._await_append(append, batch)
        stats = self.stats
        by_stream = stats.records_by_stream
        for stream, (n, _first, _last) in counts.items():
            by_stream[stream] = by_stream.get(stream, 0) + n
        stats.batches += 1
        stats.frames_written += 1
        stats.bytes_written += nbytes
        stats.records_written += len(batch)
        self.metrics.wal_write_seconds.labels("ticks").observe(write_s)
        if not self._unsynced_oldest_ns:
            self._unsynced_oldest_ns = batch[0].recv_ns
        if self._written_taps:
            self._call_taps(self._written_taps, batch)
        if self._payload_taps and self._store is not None:
            payload = self._store.ticks.last_payload
            for payload_tap in self._payload_taps:
                try:
                    payload_tap(payload)
                except Exception as exc:
                    self._count_recorder_error("tap", exc, batch[0])
        if self._durable_taps:
            self._not_durable.append(batch)
        if self.config.fsync_policy == "always":
            await self._sync()
        elif self.config.fsync_policy == "never":
            self._mark_durable()

    async def _await_append(
        self, fut: asyncio.Future[tuple[int, float, StreamCounts]], batch: list[Record]
    ) -> tuple[int, float, StreamCounts]:
        """The append's result; on a WAL failure reopen the store (recovery truncates any torn
        frame, a new segment starts) and retry the same batch until it is written. While shutting
        down it gives up after a few attempts rather than hang the exit."""
        failures = 0
        while True:
            try:
                result = await fut
                if not self.wal_ok:
                    log.warning("WAL writable again", records=len(batch))
                    self.wal_ok = True
                if self.stats.wal_error:
                    self.stats.wal_written()
                return result
            except Exception as exc:
                if not (isinstance(exc, OSError) or _is_wal_error(exc)):
                    # Not the disk: some record cannot be encoded. Nothing was written; drop
                    # those records (with a status marker in their place) and write the rest.
                    batch[:] = self._without_unencodable(batch, exc)
                    fut = asyncio.get_running_loop().run_in_executor(
                        self._pool, self._append_ticks, batch
                    )
                    continue
                failures += 1
                if self.queue.finished and failures >= _SHUTDOWN_WAL_ATTEMPTS:
                    # the root cause (a full disk), not the last retry's "WAL is not open"
                    cause = self.stats.wal_error or str(exc)
                    raise WalError(
                        f"gave up writing {len(batch) + len(self.queue)} records at shutdown: "
                        f"{cause}"
                    ) from exc
                await self._wal_failed(exc)
            fut = asyncio.get_running_loop().run_in_executor(self._pool, self._append_ticks, batch)

    async def _wal_failed(self, exc: BaseException) -> None:
        stats = self.stats
        stats.wal_failed(str(exc))
        if self.wal_ok or stats.wal_errors % 60 == 1:
            log.error(
                "cannot write the WAL; holding records and retrying (feeds will wait once the "
                "queue is full): free disk space or fix permissions",
                error=stats.wal_error,
                latest=stats.wal_last_error,
            )
        self.wal_ok = False
        await asyncio.sleep(_WAL_RETRY_S)
        with contextlib.suppress(Exception):  # counted by the round; the store is closed next
            await self._round_written()
        store = self._store
        self._store = None
        if store is not None:
            # The store is already broken; reopening is what matters.
            with contextlib.suppress(Exception):
                await self._in_pool(store.close)
        try:
            self._store = await self._in_pool(self._open_store)
        except Exception as reopen_exc:
            stats.wal_last_error = str(reopen_exc)

    def _without_unencodable(self, batch: list[Record], exc: Exception) -> list[Record]:
        bad = [r for r in batch if not _encodes(r)]
        if not bad:  # the batch failed but no record alone does: do not loop on it
            bad = list(batch)
        n = self._count_recorder_error("wal_encode", exc, bad[0])
        kept = [r for r in batch if all(r is not b for b in bad)]
        names = sorted({type(r).__name__ for r in bad})
        kept.append(
            Status(
                bad[0].recv_ns,
                self.system_seq.next(),
                "system",
                StatusKind.REJECTED,
                "",
                f"dropped {len(bad)} records the WAL cannot encode ({', '.join(names)}; "
                f"{type(exc).__name__}; {n} such failures so far)",
            )
        )
        return kept

    def _book_failed(self, exc: Exception, record: Record) -> None:
        """A book raised on ``record`` (already on its way to the WAL): count it, and mark it in
        the stream with a ``rejected`` status queued behind the batch."""
        n = self._count_recorder_error("books", exc, record)
        self.queue.put_nowait(
            Status(
                record.recv_ns,
                self.system_seq.next(),
                "system",
                StatusKind.REJECTED,
                "",
                f"books could not apply a {type(record).__name__} ({type(exc).__name__}; "
                f"{n} such failures so far); the record is kept, the books skipped it",
            )
        )

    def _count_recorder_error(self, stage: str, exc: BaseException, record: Record) -> int:
        errors = self.stats.recorder_errors
        n = errors[stage] = errors.get(stage, 0) + 1
        if n == 1 or n % 1000 == 0:
            log.error(
                "recorder caught an exception and carries on (a bug: please report it)",
                stage=stage,
                error=repr(exc)[:200],
                record=repr(record)[:200],
                count=n,
            )
        return n

    def _append_ticks(self, batch: Sequence[Record]) -> tuple[int, float, StreamCounts]:
        """Write the batch; also returns its per-stream counts, which the store takes while it
        writes (the one place a batch is counted)."""
        store = self._store
        if store is None:
            raise OSError("the tick WAL is not open")
        t0 = time.perf_counter()
        nbytes = store.append_ticks(batch)
        return nbytes, time.perf_counter() - t0, store.last_ticks_counts

    def _apply(self, batch: list[Record]) -> None:
        """Update books, counters and checks from ``batch`` (on the event loop).

        A Kite full tick replaces its instrument's whole book, so only the last one per
        instrument in a batch can matter: the others are skipped (coalesced). Books are thus
        exact at every batch boundary, which is the only place anything reads them (snapshots
        split batches at their boundary), and equal to a replay that applies every tick."""
        apply = self.books.apply
        keeper_stats = self.books.stats
        stats = self.stats
        latest: dict[int, Record] = {}
        kite_last, rest = split_batch(batch, latest)
        binance_last = 0
        venue_last: dict[str, int] = {}  # the futures-era types carry their venue
        # Defence in depth: an exception from a book (a bug, or input the schema let through)
        # skips that record and the loop resumes with the next one: the iterator is shared.
        it = iter(rest)
        r: Record | None = None
        while True:
            try:
                for r in it:
                    t = type(r)
                    if t is BinanceDepth:
                        refused = keeper_stats.rejected
                        apply(r)
                        binance_last = r.recv_ns
                        problem = check_depth(r, keeper_stats.rejected != refused)  # type: ignore[arg-type]
                        if problem is not None:
                            self._nonsense(problem, r)
                        continue
                    if t is not KiteTick:  # (split_batch saw to the ticks' books)
                        apply(r)
                        if t is BinanceTrade:
                            binance_last = r.recv_ns
                        elif t is Status:
                            self._on_status(r)  # type: ignore[arg-type]
                        elif t in VENUE_SYMBOL_TYPES:
                            venue_last[r.venue] = r.recv_ns  # type: ignore[union-attr]
                    problem = check_record(r)
                    if problem is not None:
                        self._nonsense(problem, r)
                break
            except Exception as exc:
                self._book_failed(exc, r)  # type: ignore[arg-type]
        for r in latest.values():
            try:
                apply(r)
            except Exception as exc:
                self._book_failed(exc, r)
        if kite_last is not None:
            stats.last_data_ns["kite"] = kite_last
        if binance_last:
            stats.last_data_ns["binance"] = binance_last
        if venue_last:
            stats.last_data_ns.update(venue_last)
        books = self.books
        stats.books = len(books.books)
        stats.crossed_books = books.stats.crossed + books.stats.locked
        stats.crossed_now = len(books.crossed_now)

    def _nonsense(self, problem: str, r: Record) -> None:
        if self.stats.count_invalid(problem) == 1:
            log.warning(
                "nonsense values in a record (kept as received)",
                kind=problem,
                record=repr(r)[:300],
            )

    def _on_status(self, r: Status) -> None:
        stats = self.stats
        stats.status_by_kind[r.kind] = stats.status_by_kind.get(r.kind, 0) + 1
        if r.kind == StatusKind.GAP:
            stats.gaps_by_venue[r.venue] = stats.gaps_by_venue.get(r.venue, 0) + 1

    # ------------------------------------------------------------------ durability

    def _idle_timeout(self) -> float:
        timeout = _IDLE_TICK_S
        if self._unsynced_oldest_ns and self.config.fsync_policy == "interval":
            timeout = min(
                timeout, max(0.0, self._last_sync + self._sync_interval_s - time.monotonic())
            )
        to_snapshot = (self._next_snapshot_ns - time.time_ns()) / 1e9 + _SNAPSHOT_GRACE_S
        return max(0.001, min(timeout, to_snapshot))

    async def _housekeeping(self) -> None:
        if (
            self._unsynced_oldest_ns
            and self.config.fsync_policy == "interval"
            and time.monotonic() - self._last_sync >= self._sync_interval_s
        ):
            await self._sync()
        # With a backlog queued, records stamped before the boundary may still be waiting: the
        # batch that reaches past the boundary takes the snapshot instead (see _handle).
        now = time.time_ns()
        if now >= self._next_snapshot_ns + int(_SNAPSHOT_GRACE_S * 1e9) and not len(self.queue):
            await self._snapshot(self._next_snapshot_ns)
            if now > self._next_snapshot_ns:
                self._next_snapshot_ns = self._boundary_after(now)

    async def _sync(self, force: bool = False) -> None:
        if self._store is None or not (self._unsynced_oldest_ns or force):
            return
        t0 = time.perf_counter()
        try:
            await self._in_pool(self._store.ticks.sync)
        except Exception as exc:
            if not (isinstance(exc, OSError) or _is_wal_error(exc)):
                raise
            await self._wal_failed(exc)
            return
        self.metrics.fsync_seconds.labels("ticks").observe(time.perf_counter() - t0)
        self.stats.syncs += 1
        self._last_sync = time.monotonic()
        self._mark_durable()

    def _mark_durable(self) -> None:
        now = time.time_ns()
        if self._unsynced_oldest_ns:
            self.metrics.recv_to_durable_seconds.observe(
                max(0, now - self._unsynced_oldest_ns) / 1e9
            )
        self._unsynced_oldest_ns = 0
        self.stats.last_durable_ns = now
        if self._not_durable:
            done, self._not_durable = self._not_durable, []
            for batch in done:
                self._call_taps(self._durable_taps, batch)

    def _call_taps(self, taps: list[RecordTap], batch: Sequence[Record]) -> None:
        if not batch:
            return
        for tap in taps:
            try:
                tap(batch)
            except Exception as exc:
                self._count_recorder_error("tap", exc, batch[0])

    # ------------------------------------------------------------------ snapshots

    async def _snapshot(self, at_ns: int, final: bool = False) -> None:
        """Take every book as of ``at_ns`` and write them to the LOB WAL and refresh
        metadata.json on the LOB thread, without waiting for it (``final``: waiting). One round
        is written at a time: a disk slower than a round per interval makes the next round wait
        for the last, not pile up rounds in memory."""
        if self._store is None:
            return
        if at_ns >= self._next_snapshot_ns:
            self._next_snapshot_ns = self._boundary_after(at_ns)
        if not self.config.enable_reconstruction:
            return
        await self._round_written()
        if self._store is None:  # the WAL failed meanwhile; the next round retries
            return
        t0 = time.perf_counter()
        snaps = self.books.snapshots(at_ns)
        self._round = asyncio.get_running_loop().create_task(
            self._write_round(snaps, at_ns, final, t0), name="shriven-snapshot-round"
        )
        if final:
            await self._round_written()

    async def _round_written(self) -> None:
        """Wait for the snapshot round in flight, if any (its WAL errors are counted by it)."""
        if self._round is not None:
            task, self._round = self._round, None
            await task

    async def _write_round(
        self, snaps: list[BookSnapshot], at_ns: int, final: bool, t0: float
    ) -> None:
        store = self._store
        if store is None:
            return
        policy = self.config.fsync_policy

        def write() -> None:
            if snaps:
                t1 = time.perf_counter()
                store.append_lob(snaps)
                self.metrics.wal_write_seconds.labels("lob").observe(time.perf_counter() - t1)
                if policy != "never" or final:
                    t2 = time.perf_counter()
                    store.lob.sync()
                    self.metrics.fsync_seconds.labels("lob").observe(time.perf_counter() - t2)
            store.write_metadata()

        try:
            await asyncio.get_running_loop().run_in_executor(self._lob_pool, write)
        except Exception as exc:
            if not (isinstance(exc, OSError) or _is_wal_error(exc)):
                raise
            self.stats.wal_failed(str(exc))
            log.error("cannot write book snapshots; will retry next round", error=str(exc))
            return
        if snaps and self._snapshot_taps:
            self._call_taps(self._snapshot_taps, snaps)
        self.stats.snapshots_written += len(snaps)
        self.stats.snapshot_rounds += 1
        self.stats.last_snapshot_ns = at_ns
        self.metrics.snapshot_seconds.observe(time.perf_counter() - t0)

    # ------------------------------------------------------------------ helpers

    async def _in_pool(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)


def py_split_batch(
    batch: list[Record], latest: dict[int, Record]
) -> tuple[int | None, list[Record]]:
    """The recorder's pass over a batch's Kite ticks: each full tick into ``latest`` by token,
    in order (the books apply only the last one per instrument); returns the last tick's
    ``recv_ns`` (None without one) and the records still to check one by one, which are all but
    the held ticks (a packet's words are unsigned: nothing in it can be negative)."""
    last: int | None = None
    rest: list[Record] = []
    for r in batch:
        if type(r) is not KiteTick:
            rest.append(r)
            continue
        try:
            ns, mode, token = r.recv_ns, r.mode, r.instrument_token  # type: ignore[union-attr]
        except AttributeError:  # a field deleted: the check will say so
            rest.append(r)
            continue
        last = ns
        if mode == "full":
            latest[token] = r
        if kite_packet(r) is None:
            rest.append(r)
    return last, rest


# the pass in C once shriven._kitetick holds KiteTick (py_split_batch is its reference)
split_batch = _kitetick.split_batch if _kitetick is not None else py_split_batch


def _first_after(batch: list[Record], t_ns: int) -> int:
    """Index of the first record stamped after ``t_ns`` (records arrive nearly time-ordered)."""
    for i, r in enumerate(batch):
        if r.recv_ns > t_ns:
            return i
    return len(batch)


def _encodes(record: Record) -> bool:
    try:
        encode_record(record)
    except Exception:
        return False
    return True


def _is_wal_error(exc: BaseException) -> bool:
    return isinstance(exc, WalError)

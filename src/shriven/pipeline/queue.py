"""The bounded queue between the feed adapters and the writer: the pipeline's :class:`RecordSink`.

A plain deque with hand-rolled wake-ups rather than :class:`asyncio.Queue`: the writer takes whole
batches at once, and the fast path of :meth:`RecordQueue.put` (room available) does no awaiting.

Pacing (``wait`` policy): once ``soft_limit`` records are queued, a put returns only after the
writer's next take. A burst then waits as bytes in the socket buffers (184 bytes a Kite full
tick) rather than as parsed records (about 2 kB each), so the records in flight, and with them
the allocator's high water (RSS), stay bounded by the soft limit instead of by the longest stall
so far. Receive times stay the times the adapter read each message; a message that waited in
the socket is stamped when read, and the waits are counted (``paced``, ``paced_seconds``).

When the queue is full the policy decides:

- ``"wait"``: the adapter awaits room. Nothing is lost; the first wait of an episode logs a warning
  and every wait is counted (``waits``, ``wait_seconds``). An episode ends when the queue has
  drained below half.
- ``"drop"``: the record is dropped and counted per stream. When room returns, a
  ``Status(kind=DROPPED)`` marker on the ``system`` stream is queued ahead of the next record so
  the gap is visible in the WAL. Status records and Binance depth snapshots are never dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from shriven.events import (
    BinanceDepthSnapshot,
    BinanceFuturesDepthSnapshot,
    Record,
    SeqCounter,
    Status,
    StatusKind,
    now_ns,
    status_detail,
    stream_of,
)
from shriven.logging import get_logger

log = get_logger("shriven.pipeline.queue")

QueuePolicy = Literal["wait", "drop"]


@dataclass(slots=True)
class QueueStats:
    put: int = 0
    taken: int = 0
    waits: int = 0  # puts that had to wait for room
    wait_seconds: float = 0.0
    full_episodes: int = 0
    dropped: int = 0
    dropped_by_stream: dict[str, int] = field(default_factory=dict)
    drop_markers: int = 0
    high_water: int = 0
    paced: int = 0  # puts that waited for the writer's next take at the soft limit
    paced_seconds: float = 0.0


@dataclass(slots=True)
class _DropRun:
    count: int
    first_seq: int
    last_seq: int
    first_ns: int
    last_ns: int
    instruments: set[str] = field(default_factory=set)
    # A record of the stream kept over the bound (a Status, a snapshot) cuts the run, so that
    # each marker's seq range holds only lost records: (count, first_seq, last_seq, first_ns,
    # last_ns) of the runs before the cut.
    cut: bool = False
    earlier: list[tuple[int, int, int, int, int]] = field(default_factory=list)

    def spans(self) -> list[tuple[int, int, int, int, int]]:
        return [
            *self.earlier,
            (self.count, self.first_seq, self.last_seq, self.first_ns, self.last_ns),
        ]


DropHandler = Callable[[str, set[str]], None]

# Markers and the snapshots books restart from are few and are what makes a loss visible and
# recoverable: the drop policy admits them over the bound.
_NEVER_DROPPED: frozenset[type] = frozenset(
    {Status, BinanceDepthSnapshot, BinanceFuturesDepthSnapshot}
)


def _instrument_of(record: Record) -> str:
    symbol = getattr(record, "symbol", None)
    if isinstance(symbol, str):
        return symbol
    token = getattr(record, "instrument_token", None)
    return str(token) if token is not None else ""


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class RecordQueue:
    """Bounded FIFO of records. ``put`` is the adapters' side, ``get_batch`` the writer's."""

    def __init__(
        self,
        maxsize: int,
        policy: QueuePolicy = "wait",
        system_seq: SeqCounter | None = None,
        soft_limit: int | None = None,
    ) -> None:
        """``soft_limit``: with the ``wait`` policy, puts pace themselves once this many records
        are queued (see the module's docstring); unset, only ``maxsize`` bounds the queue."""
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        if soft_limit is not None and soft_limit < 1:
            raise ValueError("soft_limit must be at least 1")
        self.maxsize = maxsize
        self.policy: QueuePolicy = policy
        self.soft_limit = soft_limit
        # a limit at or above the bound paces nothing: a full queue waits as before
        self._pace_at = (
            soft_limit if soft_limit is not None and soft_limit < maxsize else maxsize + 1
        )
        self._pacers: deque[asyncio.Future[None]] = deque()
        self.stats = QueueStats()
        self._items: deque[Record] = deque()
        self._put_waiters: deque[asyncio.Future[None]] = deque()
        self._getter: asyncio.Future[None] | None = None
        self._getter_wants = 1
        self._closed = False
        self._finished = False
        self._in_episode = False
        self._drops: dict[str, _DropRun] = {}
        self._system_seq = system_seq if system_seq is not None else SeqCounter()
        # Told (stream, instruments) after each run of drops, e.g. to resync those books.
        self.on_drop: DropHandler | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def finished(self) -> bool:
        """No more records will come: the writer drains what is left and stops."""
        return self._finished

    # ------------------------------------------------------------------ producer side

    async def put(self, record: Record) -> None:
        items = self._items
        if len(items) < self.maxsize or self._closed:
            if self._drops:
                self._flush_drop_markers()
            items.append(record)
            self.stats.put += 1
            if self._getter is not None and len(items) >= self._getter_wants:
                self._wake_getter()
            if len(items) >= self._pace_at and self.policy == "wait" and not self._closed:
                await self._pace()
            return
        if self.policy == "drop":
            if type(record) in _NEVER_DROPPED:
                run = self._drops.get(stream_of(record))
                if run is not None:
                    run.cut = True
                self.put_nowait(record)
            else:
                self._drop(record)
            return
        await self._wait_for_room(record)

    async def put_many(self, records: Iterable[Record]) -> None:
        """``put`` each record in order (one call for the many records of one venue message).

        With room for them all and no drops pending it is one ``extend``: a ``put`` each was
        about 0.35 us a Kite tick, a tenth of what the whole recorder may spend on one
        (benchmarks/ingest.py)."""
        items = self._items
        if (
            not self._drops
            and isinstance(records, (list, tuple))
            and len(items) + len(records) <= self.maxsize
        ):
            items.extend(records)
            self.stats.put += len(records)
            if self._getter is not None and len(items) >= self._getter_wants:
                self._wake_getter()
            if len(items) >= self._pace_at and self.policy == "wait" and not self._closed:
                await self._pace()
            return
        for r in records:
            await self.put(r)

    def put_nowait(self, record: Record) -> None:
        """Queue a record ignoring the bound (for the pipeline's own few status records)."""
        self._items.append(record)
        self.stats.put += 1
        if self._getter is not None and len(self._items) >= self._getter_wants:
            self._wake_getter()

    async def _pace(self) -> None:
        """Wait for the writer's next take (the record is already queued)."""
        stats = self.stats
        stats.paced += 1
        stats.high_water = max(stats.high_water, len(self._items))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pacers.append(fut)
        started = time.perf_counter()
        try:
            await fut
        finally:
            stats.paced_seconds += time.perf_counter() - started

    async def _wait_for_room(self, record: Record) -> None:
        stats = self.stats
        stats.waits += 1
        stats.high_water = max(stats.high_water, len(self._items))
        if not self._in_episode:
            self._in_episode = True
            stats.full_episodes += 1
            log.warning(
                "queue full: feeds are waiting for the writer",
                maxsize=self.maxsize,
                stream=stream_of(record),
            )
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            while len(self._items) >= self.maxsize and not self._closed:
                fut: asyncio.Future[None] = loop.create_future()
                self._put_waiters.append(fut)
                try:
                    await fut
                finally:
                    if not fut.done():
                        fut.cancel()
        except asyncio.CancelledError:
            # Shutdown cancels adapters after closing the queue: keep what they already received.
            if self._closed:
                self._items.append(record)
                stats.put += 1
            raise
        finally:
            stats.wait_seconds += time.perf_counter() - started
        self._items.append(record)
        stats.put += 1
        if self._getter is not None and len(self._items) >= self._getter_wants:
            self._wake_getter()

    def _drop(self, record: Record) -> None:
        stream = stream_of(record)
        stats = self.stats
        stats.dropped += 1
        stats.dropped_by_stream[stream] = stats.dropped_by_stream.get(stream, 0) + 1
        run = self._drops.get(stream)
        if run is None:
            run = self._drops[stream] = _DropRun(
                1, record.seq, record.seq, record.recv_ns, record.recv_ns
            )
            run.instruments.add(_instrument_of(record))
            if not self._in_episode:
                self._in_episode = True
                stats.full_episodes += 1
                log.warning("queue full: dropping records", maxsize=self.maxsize, stream=stream)
        else:
            if run.cut:
                run.earlier.append(run.spans()[-1])
                run.cut = False
                run.count, run.first_seq, run.first_ns = 0, record.seq, record.recv_ns
            run.count += 1
            run.last_seq = record.seq
            run.last_ns = record.recv_ns
            run.instruments.add(_instrument_of(record))

    def _flush_drop_markers(self) -> None:
        for stream, run in self._drops.items():
            for count, first_seq, last_seq, first_ns, last_ns in run.spans():
                detail = status_detail(
                    stream=stream,
                    dropped=count,
                    first_seq=first_seq,
                    last_seq=last_seq,
                    first_recv_ns=first_ns,
                    last_recv_ns=last_ns,
                )
                marker = Status(
                    now_ns(), self._system_seq.next(), "system", StatusKind.DROPPED, stream, detail
                )
                self._items.append(marker)
                self.stats.put += 1
                self.stats.drop_markers += 1
                log.warning(
                    "records dropped while the queue was full", stream=stream, dropped=count
                )
        runs = list(self._drops.items())
        self._drops.clear()
        if self.on_drop is not None:
            for stream, run in runs:
                self.on_drop(stream, run.instruments - {""})

    # ------------------------------------------------------------------ consumer side

    async def get_batch(
        self, max_records: int, max_wait_s: float, idle_timeout_s: float
    ) -> list[Record]:
        """Up to ``max_records`` records, oldest first.

        Waits up to ``idle_timeout_s`` for the first record (returns ``[]`` if none came), then
        up to ``max_wait_s`` more for the batch to fill. A closed queue returns what it has.
        """
        items = self._items
        if not items and not self._finished:
            await self._wait_until(1, idle_timeout_s)
            if not items:
                return []
        if len(items) < max_records and not self._finished and max_wait_s > 0:
            await self._wait_until(max_records, max_wait_s)
        return self.take(max_records)

    def take(self, max_records: int) -> list[Record]:
        """Whatever is queued, up to ``max_records``, without waiting."""
        items = self._items
        depth = len(items)
        # Records leave only here, so the depth before a take is the deepest since the last one
        # (not counted while shutting down, when the queue takes what the stopping adapters
        # still hold over its bound).
        if depth > self.stats.high_water and not self._closed:
            self.stats.high_water = depth
        n = min(max_records, depth)
        if n == depth:
            batch = list(items)
            items.clear()
        else:
            popleft = items.popleft
            batch = [popleft() for _ in range(n)]
        self.stats.taken += n
        if self._drops and n:
            self._flush_drop_markers()
        self._after_take()
        return batch

    def _after_take(self) -> None:
        depth = len(self._items)
        if self._in_episode and depth <= self.maxsize // 2:
            self._in_episode = False
        for waiters in (self._pacers, self._put_waiters):
            while waiters:
                fut = waiters.popleft()
                if not fut.done():
                    fut.set_result(None)

    async def _wait_until(self, n: int, timeout: float) -> None:
        if len(self._items) >= n or self._finished:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._getter = fut
        self._getter_wants = n
        timer = loop.call_later(timeout, _resolve, fut)
        try:
            await fut
        finally:
            timer.cancel()
            self._getter = None
            self._getter_wants = 1

    def _wake_getter(self) -> None:
        g = self._getter
        if g is not None and not g.done():
            g.set_result(None)

    # ------------------------------------------------------------------ shutdown

    def close(self) -> None:
        """Stop bounding: puts are accepted at once (waiting adapters too) so that records already
        received, and the markers adapters write as they stop, survive shutdown."""
        self._closed = True
        if self._drops:
            self._flush_drop_markers()
        for fut in (*self._put_waiters, *self._pacers):
            if not fut.done():
                fut.set_result(None)
        self._put_waiters.clear()
        self._pacers.clear()

    def finish(self) -> None:
        """The producers are gone: the writer's waits return at once and it stops when empty."""
        self.close()
        self._finished = True
        self._wake_getter()

"""The replay order: receive time, then stream name, then the stream's sequence number.

The WAL holds records in the order the daemon wrote them, which is receive order except where
adapters' records interleave in the queue (a Kite packet's ticks share one receive time; an
adapter that waited for queue room writes after a faster one) or the clock stepped back. Replay
restores ``(recv_ns, stream, seq)`` order with a sliding window: a record is emitted once a
record received ``window_ns`` later has been read. Equal keys keep write order (sorting is
stable), so the order is a function of the store alone. A record written more than the window
after later-received ones cannot be moved back; it is emitted where it is and counted in
``late``.
"""

from __future__ import annotations

import heapq
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final, TextIO

from shriven.events import (
    BinanceDepth,
    BinanceDepthSnapshot,
    BinanceTrade,
    KiteTick,
    Record,
)

__all__ = [
    "DEFAULT_WINDOW_NS",
    "OrderStats",
    "ProgressLine",
    "merge_ordered",
    "order_key",
    "paced",
    "reorder",
    "with_progress",
]

DEFAULT_WINDOW_NS: Final = 10 * 1_000_000_000
_MIN_SORT_BATCH: Final = 16_384
_FIXED_STREAM: Final[dict[type, str]] = {
    KiteTick: "kite",
    BinanceTrade: "binance",
    BinanceDepth: "binance",
    BinanceDepthSnapshot: "binance",
}


def order_key(record: Record) -> tuple[int, str, int]:
    stream = _FIXED_STREAM.get(type(record))
    if stream is None:
        stream = record.venue  # type: ignore[union-attr]
    return (record.recv_ns, stream, record.seq)


@dataclass(slots=True)
class OrderStats:
    records: int = 0
    late: int = 0  # records that arrived more than the window after later-received ones


def _recv(record: Record) -> int:
    return record.recv_ns


def reorder(
    records: Iterable[Record],
    window_ns: int = DEFAULT_WINDOW_NS,
    stats: OrderStats | None = None,
) -> Iterator[Record]:
    """Records in ``order_key`` order, given input that is out of order by at most ``window_ns``."""
    stats = stats if stats is not None else OrderStats()
    buf: list[Record] = []
    unsorted = 0
    emitted_up_to: int | None = None  # recv_ns of the last record emitted
    for record in records:
        buf.append(record)
        unsorted += 1
        stats.records += 1
        if emitted_up_to is not None and record.recv_ns < emitted_up_to:
            stats.late += 1
        if unsorted >= _MIN_SORT_BATCH and unsorted >= len(buf) - unsorted:
            buf.sort(key=order_key)
            unsorted = 0
            cut = bisect_right(buf, buf[-1].recv_ns - window_ns, key=_recv)
            if cut:
                emitted_up_to = buf[cut - 1].recv_ns
                yield from buf[:cut]
                del buf[:cut]
    buf.sort(key=order_key)
    yield from buf


def merge_ordered(*sources: Iterable[Record]) -> Iterator[Record]:
    """Merge already ordered sources; on equal keys the earlier source comes first."""
    if len(sources) == 1:
        return iter(sources[0])
    return heapq.merge(*sources, key=order_key)


def paced(
    records: Iterable[Record],
    speed: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Record]:
    """Re-emit records at ``speed`` times their recorded pace (gaps between receive times are
    divided by ``speed``). The first record goes out at once."""
    first_recv: int | None = None
    t0 = 0.0
    for record in records:
        if first_recv is None:
            first_recv = record.recv_ns
            t0 = clock()
        else:
            due = t0 + (record.recv_ns - first_recv) / 1e9 / speed
            wait = due - clock()
            if wait > 0:
                sleep(wait)
        yield record


def with_progress(
    records: Iterable[Record],
    start_ns: int | None,
    end_ns: int | None,
    out: TextIO,
    describe: Callable[[int], str],
    interval_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Record]:
    """Pass records through, writing ``replay: N records, at <time> (P%)`` to ``out`` at most
    every ``interval_s`` seconds (checked every 4096 records), and a final line."""
    line = ProgressLine(start_ns, end_ns, out, describe, interval_s, clock)
    n = 0
    last_recv: int | None = None
    for record in records:
        n += 1
        last_recv = record.recv_ns
        if not n & 4095:
            line.update(n, last_recv)
        yield record
    line.finish(n, last_recv)


class ProgressLine:
    """The progress line of a replay on ``out`` (see :func:`with_progress`), for writers that
    count records themselves."""

    def __init__(
        self,
        start_ns: int | None,
        end_ns: int | None,
        out: TextIO,
        describe: Callable[[int], str],
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out
        self.describe = describe
        self.interval_s = interval_s
        self.clock = clock
        self.pct = _pct_factory(start_ns, end_ns)
        self.next_report = clock() + interval_s

    def update(self, n: int, last_recv: int) -> None:
        """``n`` records out so far, the last received at ``last_recv``: a line if it is time."""
        if self.clock() >= self.next_report:
            self.out.write(
                f"\rreplay: {n:,} records, at {self.describe(last_recv)}{self.pct(last_recv)}"
            )
            self.out.flush()
            self.next_report = self.clock() + self.interval_s

    def finish(self, n: int, last_recv: int | None) -> None:
        at = f", last at {self.describe(last_recv)}" if last_recv is not None else ""
        self.out.write(f"\rreplay: {n:,} records{at}\n")
        self.out.flush()


def _pct_factory(start_ns: int | None, end_ns: int | None) -> Callable[[int], str]:
    if start_ns is None or end_ns is None or end_ns <= start_ns:
        return lambda _ns: ""
    span = end_ns - start_ns
    return lambda ns: f" ({100 * (ns - start_ns) / span:.0f}%)"

"""History over the venues' protocols: a range and a speed from the URL, records read from the
store on a thread of their own and handed to the event loop in bounded chunks, paced.

Path form (every client takes it unmodified: KiteTicker appends its own query string to
``root``): ``.../history/<start>/<end>/<speed>``, the times ISO 8601 (no offset: the market zone,
``SHRIVEN_MARKET_TZ``), the speed ``1x``, ``10x``, ``0.5x`` or ``max`` (as fast as the client
reads). Messages go in recorded order with the recorded spacing divided by the speed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from shriven.errors import ReplayError, ShrivenError
from shriven.events import Record
from shriven.replay import Selection, StoreReader, format_ns, parse_instant
from shriven.serve.clients import Client
from shriven.wal.check import wal_stats

__all__ = [
    "HistoryRange",
    "Pacer",
    "Settle",
    "check_range",
    "end_of_history",
    "parse_range",
    "read_chunks",
    "store_span",
]

_CHUNK_RECORDS: Final = 2_000
_CHUNKS_AHEAD: Final = 4  # chunks read ahead of the client: bounds memory per session


@dataclass(slots=True, frozen=True)
class HistoryRange:
    start_ns: int
    end_ns: int
    speed: float | None  # None: as fast as the client reads
    label: str  # "<start>/<end>/<speed>" as given


def parse_range(start: str, end: str, speed: str, zone: ZoneInfo) -> HistoryRange:
    """Raises ReplayError with what was wrong and the form to use."""
    start_ns = parse_instant(start, zone)
    end_ns = parse_instant(end, zone)
    if end_ns <= start_ns:
        raise ReplayError(f"the range {start} to {end} is empty: the end must be after the start")
    text = speed.strip().lower()
    factor: float | None
    if text == "max":
        factor = None
    else:
        try:
            factor = float(text.removesuffix("x"))
        except ValueError:
            factor = -1.0
        if not text.endswith("x") or not 0 < factor < 1e6:
            raise ReplayError(
                f"bad speed {speed!r} in the path: use 1x, 10x, 0.5x or max (as fast as you read)"
            )
    return HistoryRange(start_ns, end_ns, factor, f"{start}/{end}/{speed}")


def store_span(data_dir: Path) -> tuple[int, int] | None:
    """First and last receive times in the store's tick WAL (last: now while a writer is
    active), or None when it holds no records."""
    st = wal_stats("ticks", Path(data_dir) / "ticks")
    if st.first_ns is None or st.last_ns is None:
        return None if not st.unindexed_bytes else (0, time.time_ns())
    last = time.time_ns() if st.unindexed_bytes else st.last_ns
    return st.first_ns, last


def check_range(data_dir: Path, rng: HistoryRange, zone: ZoneInfo) -> None:
    """Raise ReplayError when the store holds nothing in the range."""
    span = store_span(data_dir)
    if span is None:
        raise ReplayError(f"the store {data_dir} holds no records yet")
    first, last = span
    if rng.end_ns <= first or rng.start_ns > last:
        raise ReplayError(
            f"{format_ns(rng.start_ns, zone)} to {format_ns(rng.end_ns, zone)} is outside the "
            f"store, which holds {format_ns(first, zone)} to {format_ns(last, zone)}"
        )


async def end_of_history(client: Client, rng: HistoryRange, zone: ZoneInfo, sent: int) -> None:
    """The close frame that ends a history stream: code 1000 and what was replayed."""
    await client.finish(
        1000,
        f"end of history {format_ns(rng.start_ns, zone)} to {format_ns(rng.end_ns, zone)}: "
        f"{sent} messages",
        "end_of_history",
    )


def _chunks(records: Iterator[Record]) -> Iterator[list[Record]]:
    """Chunks of about _CHUNK_RECORDS, cut only between receive times (a Kite message's ticks
    share one and stay together)."""
    chunk: list[Record] = []
    for r in records:
        if len(chunk) >= _CHUNK_RECORDS and r.recv_ns != chunk[-1].recv_ns:
            yield chunk
            chunk = []
        chunk.append(r)
    if chunk:
        yield chunk


async def read_chunks(
    data_dir: Path, selection: Selection, rng: HistoryRange
) -> AsyncIterator[list[Record]]:
    """The range's selected records in replay order, read on a thread, at most a few chunks
    ahead of the consumer. A store that cannot be read raises its ShrivenError here."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[list[Record] | BaseException | None] = asyncio.Queue()
    room = threading.Semaphore(_CHUNKS_AHEAD)
    stop = threading.Event()

    def hand(item: list[Record] | BaseException | None) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def read() -> None:
        item: BaseException | None = None
        try:
            try:
                store = StoreReader(data_dir)
                for chunk in _chunks(store.records(selection, rng.start_ns, rng.end_ns)):
                    while not room.acquire(timeout=0.5):
                        if stop.is_set():
                            return
                    if stop.is_set():
                        return
                    hand(chunk)
            except ShrivenError as exc:
                item = exc
            except Exception as exc:  # a bug some stored bytes met: end the session, say why
                item = ReplayError(f"cannot read {data_dir}: {type(exc).__name__}: {exc}")
            hand(item)
        except RuntimeError:  # the event loop closed under us: the server stopped
            pass

    thread = threading.Thread(target=read, name="shriven-serve-history", daemon=True)
    thread.start()
    try:
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            room.release()
            yield item
    finally:
        stop.set()
        room.release()


class Settle:
    """When a history stream may start: once the client has subscribed and then sent no control
    message for ``quiet_s`` (a client subscribes, then sets modes: both must be in force before
    the first message goes), or ``at_most_s`` after its first subscription."""

    __slots__ = ("_at_most_s", "_first", "_last", "_quiet_s", "_wake")

    def __init__(self, quiet_s: float = 0.2, at_most_s: float = 2.0) -> None:
        self._quiet_s = quiet_s
        self._at_most_s = at_most_s
        self._first: float | None = None
        self._last = 0.0
        self._wake = asyncio.Event()

    def control(self, subscribed: bool) -> None:
        """A control message arrived; ``subscribed``: the client has something subscribed."""
        now = time.monotonic()
        self._last = now
        if subscribed and self._first is None:
            self._first = now
        self._wake.set()

    def start_now(self) -> None:
        """The URL named the streams: no need to wait."""
        self._first = self._last = time.monotonic() - self._at_most_s
        self._wake.set()

    async def wait(self) -> None:
        while True:
            if self._first is not None:
                now = time.monotonic()
                left = min(self._last + self._quiet_s, self._first + self._at_most_s) - now
                if left <= 0:
                    return
                await asyncio.sleep(left)
                continue
            self._wake.clear()
            await self._wake.wait()


class Pacer:
    """Sleeps so that records go out with their recorded spacing divided by ``speed``."""

    __slots__ = ("_origin_ns", "_speed", "_t0")

    def __init__(self, speed: float | None) -> None:
        self._speed = speed
        self._origin_ns: int | None = None
        self._t0 = 0.0

    async def wait(self, recv_ns: int) -> None:
        if self._speed is None:
            return
        loop = asyncio.get_running_loop()
        if self._origin_ns is None:
            self._origin_ns, self._t0 = recv_ns, loop.time()
            return
        delay = self._t0 + (recv_ns - self._origin_ns) / 1e9 / self._speed - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

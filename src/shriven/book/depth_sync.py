"""The official Binance spot local-book algorithm, as a pure per-symbol state machine on update ids.

Binance's rules (https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams,
"How to manage a local order book correctly"):

1. Buffer the diff events from the stream.
2. Fetch a depth snapshot. If it is older than the buffered events (its ``lastUpdateId + 1`` is
   below the first remaining event's ``U``), fetch again.
3. Drop buffered events with ``u <= lastUpdateId``.
4. The first event applied must satisfy ``U <= lastUpdateId + 1 <= u``.
5. Every later event must continue the sequence: ``U == previous u + 1``. Anything else is a gap:
   the book is discarded and the process starts again from 1 (the event that showed the gap is
   the first one buffered).

The machine holds opaque items (the diff records) only while it waits for a snapshot; it never
looks at prices. The feed adapter and :class:`shriven.book.BookKeeper` both drive one of these per
symbol over the same record order, so they take identical decisions.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

__all__ = [
    "APPLY",
    "BUFFERED",
    "GAP",
    "MAX_STALE_RUN",
    "STALE",
    "DepthSync",
    "FuturesDepthSync",
    "SnapshotResult",
]

T = TypeVar("T")

# on_diff outcomes
APPLY: Final = 0  # in sequence: apply it to the book now
STALE: Final = 1  # u <= the book's update id: ignore it
BUFFERED: Final = 2  # no usable snapshot yet: kept until one arrives
GAP: Final = 3  # out of sequence: the book is invalid, the event was buffered, fetch a snapshot

DEFAULT_MAX_BUFFER: Final = 10_000
# Update ids move by at most a few thousand per 100 ms diff on the busiest symbols. A diff whose
# ids are further than this from the book's (either way) or that spans more than this cannot be
# genuine: it is a gap and a resync, never applied (one u of 2**62 would freeze the book, every
# later diff being "stale"), never kept at the head of the buffer.
MAX_ID_JUMP: Final = 10**9
# A live book whose diffs keep arriving "stale" (u <= its update id) had its id pushed ahead of
# the stream (a diff or snapshot with ids within MAX_ID_JUMP but not genuine): it would stay
# valid and frozen until the stream caught up, hours at BTCUSDT's rate. Once a diff continued
# the book a genuine stream is never stale: this many in a row is a gap. Right after a snapshot
# the reader's backlog is stale, so there the limit is 100 times this.
MAX_STALE_RUN: Final = 100


@dataclass(slots=True)
class SnapshotResult(Generic[T]):
    """What to do with a snapshot: ``usable`` False means it is older than the buffered events
    (fetch another); otherwise replace the book with it and apply ``apply`` in order. ``gap``
    means the buffered events themselves had a hole after those: fetch again."""

    usable: bool
    apply: list[T] = field(default_factory=list)
    dropped: int = 0
    gap: bool = False


class DepthSync(Generic[T]):
    """One symbol's synchronisation state (``live`` True once a snapshot has been accepted)."""

    __slots__ = (
        "_first",
        "_stale_run",
        "buffer",
        "buffer_dropped",
        "last_update_id",
        "live",
        "max_buffer",
    )

    def __init__(self, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        self.live = False
        self.last_update_id = 0
        self._first = False  # next applied event is the first after a snapshot
        self._stale_run = 0  # stale diffs in a row while live
        self.buffer: deque[tuple[int, int, T]] = deque()
        self.max_buffer = max_buffer
        self.buffer_dropped = 0  # oldest buffered events evicted because the buffer was full

    @property
    def first_buffered_u(self) -> int | None:
        """``U`` of the oldest buffered event (None when the buffer is empty)."""
        return self.buffer[0][0] if self.buffer else None

    def on_diff(self, first_id: int, last_id: int, item: T) -> int:
        """Decide about one diff event (``U`` = first_id, ``u`` = last_id)."""
        # Nearly every live diff continues the book: decided by the tests below, in three
        # comparisons instead of their dozen (a tenth of a live diff's Python).
        if (
            first_id == self.last_update_id + 1
            and first_id <= last_id <= first_id + MAX_ID_JUMP
            and self.live
        ):
            self.last_update_id = last_id
            self._first = False
            self._stale_run = 0
            return APPLY
        if not self.live:
            if last_id < first_id or last_id - first_id > MAX_ID_JUMP:
                return BUFFERED  # nonsense ids: not kept, a genuine diff follows
            buf = self.buffer
            # One implausibly far from the previous buffered diff starts the buffer again, so a
            # stray id at its head cannot make every snapshot look older than the buffer.
            if buf and abs(first_id - buf[-1][1]) > MAX_ID_JUMP:
                buf.clear()
            self._buffer(first_id, last_id, item)
            return BUFFERED
        last = self.last_update_id
        if (
            last_id < first_id
            or last_id - first_id > MAX_ID_JUMP
            or abs(first_id - last) > MAX_ID_JUMP
            or last - last_id > MAX_ID_JUMP
        ):
            self.live = False  # not buffered: the next snapshot must not look older than it
            self.buffer.clear()
            return GAP
        if last_id <= last:
            self._stale_run += 1
            # Before a diff has continued a fresh snapshot, stale diffs are the reader's backlog
            # (the snapshot was taken ahead of it): allow far more of them.
            if self._stale_run < (MAX_STALE_RUN * 100 if self._first else MAX_STALE_RUN):
                return STALE
            self.live = False
            self.buffer.clear()
            self._buffer(first_id, last_id, item)
            return GAP
        self._stale_run = 0
        if first_id == last + 1 or (self._first and first_id <= last + 1):
            self.last_update_id = last_id
            self._first = False
            return APPLY
        self.live = False
        self.buffer.clear()
        self._buffer(first_id, last_id, item)
        return GAP

    def on_snapshot(self, last_update_id: int) -> SnapshotResult[T]:
        """Offer a snapshot whose ``lastUpdateId`` is ``last_update_id``."""
        buf = self.buffer
        dropped = 0
        while buf and buf[0][1] <= last_update_id:
            buf.popleft()
            dropped += 1
        if buf and buf[0][0] > last_update_id + 1:
            return SnapshotResult(False, dropped=dropped)
        self.live = True
        self.last_update_id = last_update_id
        self._first = True
        self._stale_run = 0
        pending = list(buf)
        buf.clear()
        result: SnapshotResult[T] = SnapshotResult(True, dropped=dropped)
        for i, (first_id, last_id, item) in enumerate(pending):
            outcome = self.on_diff(first_id, last_id, item)
            if outcome == APPLY:
                result.apply.append(item)
            elif outcome == GAP:
                result.gap = True
                for f, u, it in pending[i + 1 :]:
                    self._buffer(f, u, it)
                break
        return result

    def restore(self, last_update_id: int) -> None:
        """Continue from a book known to be correct at ``last_update_id`` (e.g. one of our own
        saved book snapshots): live, and the next diff may straddle it like a first diff."""
        self.live = True
        self.last_update_id = last_update_id
        self._first = True
        self._stale_run = 0
        self.buffer.clear()

    def invalidate(self) -> bool:
        """Forget the book (e.g. the connection dropped). Returns True if it was live; a machine
        already waiting for a snapshot keeps its buffer."""
        if not self.live:
            return False
        self.live = False
        self.buffer.clear()
        return True

    def _buffer(self, first_id: int, last_id: int, item: T) -> None:
        if len(self.buffer) >= self.max_buffer:
            self.buffer.popleft()
            self.buffer_dropped += 1
        self.buffer.append((first_id, last_id, item))


class FuturesDepthSync(Generic[T]):
    """Binance USD-M and COIN-M futures' local-book procedure, one symbol: the same interface as
    :class:`DepthSync`, other rules. Futures update ids are shared by every symbol of the venue,
    so a symbol's ``U`` does not follow its previous ``u`` by one; each diff names the ``u`` of the
    diff before it instead (``pu``). Binance's rules ("How to manage a local order book
    correctly", https://developers.binance.com/docs/derivatives/usds-margined-futures/
    websocket-market-streams/How-to-manage-a-local-order-book-correctly, and the same page for
    coin-margined futures):

    1. Buffer the diff events from the stream; fetch a depth snapshot.
    2. Drop buffered events with ``u < lastUpdateId`` (an event ending *at* lastUpdateId is kept).
    3. The first event applied must satisfy ``U <= lastUpdateId <= u``; an event whose ``pu`` is
       lastUpdateId continues the snapshot too (the one ending at it came before the buffer).
       A first remaining event with ``U > lastUpdateId`` that does not continue it means the
       snapshot is older than the buffer: fetch again.
    4. Every later event's ``pu`` must equal the previous event's ``u``; anything else is a gap
       (the book is discarded, the event that showed it is the first one buffered).

    While waiting for a snapshot, an event whose ``pu`` is not the previous buffered ``u`` shows a
    hole in the buffer: the events before it can never be applied, so the buffer restarts there.
    """

    __slots__ = ("_first", "buffer", "buffer_dropped", "last_update_id", "live", "max_buffer")

    def __init__(self, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        self.live = False
        self.last_update_id = 0
        self._first = False
        self.buffer: deque[tuple[int, int, int, T]] = deque()
        self.max_buffer = max_buffer
        self.buffer_dropped = 0

    @property
    def first_buffered_u(self) -> int | None:
        """``U`` of the oldest buffered event (None when the buffer is empty)."""
        return self.buffer[0][0] if self.buffer else None

    def on_diff(self, first_id: int, last_id: int, prev_id: int, item: T) -> int:
        """Decide about one diff event (``U`` = first_id, ``u`` = last_id, ``pu`` = prev_id)."""
        if last_id < first_id:
            if not self.live:
                return BUFFERED  # nonsense ids: not kept, a genuine diff follows
            self._restart()
            return GAP
        if not self.live:
            buf = self.buffer
            if buf and prev_id != buf[-1][1]:
                buf.clear()
            self._buffer(first_id, last_id, prev_id, item)
            return BUFFERED
        last = self.last_update_id
        if self._first:
            if last_id < last:
                return STALE  # the reader's backlog from before the snapshot
            if prev_id == last or first_id <= last <= last_id:
                self.last_update_id = last_id
                self._first = False
                return APPLY
        elif prev_id == last:
            self.last_update_id = last_id
            return APPLY
        self._restart()
        self._buffer(first_id, last_id, prev_id, item)
        return GAP

    def on_snapshot(self, last_update_id: int) -> SnapshotResult[T]:
        """Offer a snapshot whose ``lastUpdateId`` is ``last_update_id``."""
        buf = self.buffer
        dropped = 0
        while buf and buf[0][1] < last_update_id:
            buf.popleft()
            dropped += 1
        if buf:
            first_id, _last_id, prev_id, _item = buf[0]
            if first_id > last_update_id and prev_id != last_update_id:
                return SnapshotResult(False, dropped=dropped)
        self.live = True
        self.last_update_id = last_update_id
        self._first = True
        pending = list(buf)
        buf.clear()
        result: SnapshotResult[T] = SnapshotResult(True, dropped=dropped)
        for i, (first_id, last_id, prev_id, item) in enumerate(pending):
            outcome = self.on_diff(first_id, last_id, prev_id, item)
            if outcome == APPLY:
                result.apply.append(item)
            elif outcome == GAP:
                result.gap = True
                for f, u, pu, it in pending[i + 1 :]:
                    self._buffer(f, u, pu, it)
                break
        return result

    def restore(self, last_update_id: int) -> None:
        """Continue from a book known to be correct at ``last_update_id``: the next diff must
        continue it (``pu``) or straddle it like a first diff."""
        self.live = True
        self.last_update_id = last_update_id
        self._first = True
        self.buffer.clear()

    def invalidate(self) -> bool:
        """Forget the book. Returns True if it was live; a machine already waiting for a snapshot
        keeps its buffer."""
        if not self.live:
            return False
        self._restart()
        return True

    def _restart(self) -> None:
        self.live = False
        self._first = False
        self.buffer.clear()

    def _buffer(self, first_id: int, last_id: int, prev_id: int, item: T) -> None:
        if len(self.buffer) >= self.max_buffer:
            self.buffer.popleft()
            self.buffer_dropped += 1
        self.buffer.append((first_id, last_id, prev_id, item))

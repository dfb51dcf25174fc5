"""Rebuilding books from the recorded changes, the way the daemon built them live.

The daemon applies records to a :class:`~shriven.book.BookKeeper` in the order it writes them to
the tick WAL, and every ``snapshot_interval_secs`` writes each valid book to the LOB WAL as a
:class:`~shriven.events.BookSnapshot` whose ``update_id`` is the last change in it (Binance: the
diff's or REST snapshot's last update id; Kite: the ``seq`` of the full tick). Replay does the
same: records go through a BookKeeper in write order. To start from a snapshot instead of the
beginning of the store, a book is *seeded* from it, and a record of that instrument counts as
"after the snapshot" when:

- Binance diff or REST snapshot: its last update id is above the snapshot's ``update_id``;
- Kite tick: its ``seq`` is above the snapshot's ``update_id`` (same daemon run);
- a status marker for the instrument: it was received after the snapshot's time.

Records before that point are already in the snapshot and are skipped. A daemon restart (a
``system``/``started`` status) starts every book from empty, as the new daemon did; a snapshot
belongs to the run that started last before its time, and only that run's records can be after
it (a new run restarts Kite sequence numbers, and a simulator restarts update ids too).
Seeding is lazy: it happens just before the first record after the snapshot, so a snapshot taken
while later-received records were still queued is continued exactly.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from shriven.book import BookKeeper, OrderBook
from shriven.events import (
    VENUE_SYMBOL_TYPES,
    BinanceDepth,
    BinanceDepthSnapshot,
    BinanceFuturesDepth,
    BinanceFuturesDepthSnapshot,
    BookSnapshot,
    KiteTick,
    Record,
    Status,
    StatusKind,
    instrument_key,
)

__all__ = [
    "DEFAULT_MARGIN_NS",
    "BookDifference",
    "BookState",
    "Rebuilder",
    "VerifyReport",
    "compare_book",
    "is_after",
    "is_restart",
    "verify_books",
]

# How long a record can wait in the daemon's queue between being received and being applied:
# scans start this much before a snapshot's time and targets settle this much after it.
DEFAULT_MARGIN_NS: Final = 60 * 1_000_000_000


class BookState(NamedTuple):
    """One change to a book: the record that changed it and the book right after.

    ``book`` is the live object replay keeps updating: copy what you need to keep."""

    recv_ns: int
    record: Record
    book: OrderBook
    valid: bool


def is_restart(record: Record) -> bool:
    return (
        type(record) is Status
        and record.venue == "system"  # type: ignore[union-attr]
        and record.kind == StatusKind.STARTED  # type: ignore[union-attr]
    )


def is_after(snapshot: BookSnapshot, record: Record) -> bool:
    """Was ``record`` (of the snapshot's instrument) applied after the snapshot was taken?"""
    t = type(record)
    if t is BinanceDepth or t is BinanceDepthSnapshot:
        return record.last_update_id > snapshot.update_id  # type: ignore[union-attr]
    if t is BinanceFuturesDepth or t is BinanceFuturesDepthSnapshot:
        return record.last_update_id > snapshot.update_id  # type: ignore[union-attr]
    if t is KiteTick:
        return record.seq > snapshot.update_id
    if t is Status:
        return record.recv_ns > snapshot.recv_ns
    return False  # trades and snapshots do not change books


def _changes_book(record: Record) -> bool:
    t = type(record)
    return (
        t is BinanceDepth
        or t is BinanceDepthSnapshot
        or t is KiteTick
        or t is Status
        or t is BinanceFuturesDepth
        or t is BinanceFuturesDepthSnapshot
    )


class Rebuilder:
    """A BookKeeper fed in write order, with books that can start from snapshots."""

    def __init__(self) -> None:
        self.keeper = BookKeeper()
        self.pending: dict[str, BookSnapshot] = {}  # seeds waiting for their first later record
        self.floor: dict[str, BookSnapshot] = {}  # seeded books: skip records not after these
        self.restarts = 0
        self._rejected_before = 0  # rejected by keepers of earlier runs

    @property
    def rejected(self) -> int:
        """Stored records skipped because today's schema refuses them (see KeeperStats)."""
        return self._rejected_before + self.keeper.stats.rejected

    def restart(self) -> None:
        """A daemon restart: every book starts from empty; pending seeds were of the old run."""
        self._rejected_before += self.keeper.stats.rejected
        self.keeper = BookKeeper()
        self.pending.clear()
        self.floor.clear()
        self.restarts += 1

    def seed_later(self, snapshot: BookSnapshot) -> None:
        """Start the snapshot's book from it, just before its first later record."""
        self.pending[f"{snapshot.venue}:{snapshot.instrument}"] = snapshot

    def seed_now(self, snapshot: BookSnapshot) -> None:
        key = f"{snapshot.venue}:{snapshot.instrument}"
        self.pending.pop(key, None)
        self.keeper.restore(snapshot)
        self.floor[key] = snapshot

    def flush_seeds(self) -> None:
        for snap in list(self.pending.values()):
            self.seed_now(snap)

    def apply(self, record: Record, key: str | None = None) -> bool:
        """Apply one record; False when it was skipped as already inside a seeded book."""
        if is_restart(record):
            self.restart()
            return True
        if key is None:
            key = instrument_key(record)
        seed = self.pending.get(key)
        if seed is not None and is_after(seed, record):
            self.seed_now(seed)
        floor = self.floor.get(key)
        if floor is not None and not is_after(floor, record) and _changes_book(record):
            return False
        self.keeper.apply(record)
        return True

    def book(self, key: str) -> OrderBook | None:
        return self.keeper.book(key)

    def is_valid(self, key: str) -> bool:
        return self.keeper.is_valid(key)


# ---------------------------------------------------------------- comparing


@dataclass(slots=True)
class BookDifference:
    key: str
    earlier: BookSnapshot | None  # None: rebuilt from the start of a daemon run
    later: BookSnapshot
    reason: str


def compare_book(book: OrderBook | None, valid: bool, snapshot: BookSnapshot) -> str | None:
    """None when ``book`` holds exactly the snapshot's levels, else what differs."""
    if book is None:
        return "no book was rebuilt (no recorded change for it)"
    if not valid:
        return "the rebuilt book is out of sync (a gap with no resync snapshot after it)"
    bids, asks = book.levels()
    problems = []
    for side, got, want in (
        ("bids", bids, list(snapshot.bids)),
        ("asks", asks, list(snapshot.asks)),
    ):
        if got == want:
            continue
        for i, (g, w) in enumerate(zip(got, want, strict=False)):
            if g != w:
                problems.append(f"{side} level {i + 1}: rebuilt {_lvl(g)}, recorded {_lvl(w)}")
                break
        else:
            problems.append(f"{side}: rebuilt {len(got)} levels, recorded {len(want)}")
            continue
        if len(got) != len(want):
            problems[-1] += f" ({len(got)} vs {len(want)} levels)"
    if book.update_id != snapshot.update_id and not problems:
        problems.append(f"update id: rebuilt {book.update_id}, recorded {snapshot.update_id}")
    return "; ".join(problems) or None


def _lvl(level: tuple[float, float]) -> str:
    return f"{level[1]!r}@{level[0]!r}"


@dataclass(slots=True)
class VerifyReport:
    books: set[str] = field(default_factory=set)
    pairs: int = 0  # snapshots compared with the book rebuilt from the one before
    run_starts: int = 0  # snapshots compared with a book rebuilt from a daemon start
    first_seen: int = 0  # first snapshot of a book with nothing before it to rebuild from
    differences: list[BookDifference] = field(default_factory=list)
    records: int = 0
    snapshots: int = 0
    restarts: int = 0
    seq_gaps: dict[str, int] = field(default_factory=dict)  # stream -> missing sequence numbers
    rejected: int = 0  # stored records the schema now refuses: skipped, not applied

    @property
    def ok(self) -> bool:
        return not self.differences


def verify_books(
    ticks: Iterable[Record],
    snapshots: Iterable[Record],
    restarts: Sequence[int],
    margin_ns: int = DEFAULT_MARGIN_NS,
    on_record: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Check every book snapshot against the book rebuilt from the snapshot before it plus the
    recorded changes in between (or from the daemon's start when it is the first of a run).

    ``ticks`` are the tick WAL's records and ``snapshots`` the LOB WAL's, both in write order;
    ``restarts`` the receive times of the daemon starts in ``ticks`` (StoreReader.restart_times): a
    snapshot belongs to the run that started last before it, and only records of that run can
    be after it (an earlier run's Kite sequence numbers are unrelated)."""
    report = VerifyReport()
    reb = Rebuilder()
    founded: set[str] = set()  # books whose rebuilt state is well-founded (seeded or from start)
    run = 0  # daemon runs seen; a snapshot belongs to the run in force at its time
    pending: dict[str, deque[list]] = {}  # key -> [serial, snapshot, run] in snapshot order
    heap: list[tuple[int, int, str]] = []
    serial = 0
    snap_iter: Iterator[Record] = iter(snapshots)
    next_snap: BookSnapshot | None = _next_snapshot(snap_iter)
    last_seq: dict[str, int] = {}

    def take(snap: BookSnapshot) -> None:
        nonlocal serial
        key = f"{snap.venue}:{snap.instrument}"
        serial += 1
        pending.setdefault(key, deque()).append(
            [serial, snap, bisect_right(restarts, snap.recv_ns)]
        )
        heapq.heappush(heap, (snap.recv_ns, serial, key))
        report.books.add(key)
        report.snapshots += 1

    def resolve(key: str, upto_serial: int) -> None:
        q = pending.get(key)
        while q and q[0][0] <= upto_serial:
            _serial, snap, _run = q.popleft()
            if key in founded:
                base = reb.floor.get(key)
                problem = compare_book(reb.book(key), reb.is_valid(key), snap)
                if base is None:
                    report.run_starts += 1
                else:
                    report.pairs += 1
                if problem is not None:
                    report.differences.append(BookDifference(key, base, snap, problem))
            else:
                report.first_seen += 1
            reb.seed_now(snap)
            founded.add(key)

    def resolve_before(recv_ns: int) -> None:
        while heap and heap[0][0] < recv_ns:
            _recv, s, key = heapq.heappop(heap)
            resolve(key, s)

    for record in ticks:
        report.records += 1
        recv = record.recv_ns
        while next_snap is not None and next_snap.recv_ns <= recv + margin_ns:
            take(next_snap)
            next_snap = _next_snapshot(snap_iter)
        if heap and heap[0][0] < recv - margin_ns:
            resolve_before(recv - margin_ns)
        if is_restart(record):
            resolve_before(recv)
            reb.restart()
            founded.clear()
            last_seq.clear()
            run += 1
            report.restarts += 1
            continue
        _check_seq(record, last_seq, report.seq_gaps)
        key = instrument_key(record)
        q = pending.get(key)
        while q and q[0][2] == run and is_after(q[0][1], record):
            resolve(key, q[0][0])
        if run and key not in founded and _changes_book(record):
            founded.add(key)
        reb.apply(record, key)
        if on_record is not None and not report.records & 4095:
            on_record(report.records)
    while next_snap is not None:
        take(next_snap)
        next_snap = _next_snapshot(snap_iter)
    resolve_before(1 << 63)
    report.rejected = reb.rejected
    return report


def _next_snapshot(it: Iterator[Record]) -> BookSnapshot | None:
    for r in it:
        if type(r) is BookSnapshot:
            return r  # type: ignore[return-value]
    return None


def _check_seq(record: Record, last: dict[str, int], gaps: dict[str, int]) -> None:
    """Count sequence numbers missing within each venue's stream (a record lost before the
    WAL). Advisory: it assumes one counter per venue, which a sharded feed may not have."""
    t = type(record)
    if t is KiteTick:
        stream = "kite"
    elif t is Status:
        stream = record.venue  # type: ignore[union-attr]
        if stream == "system":
            return
    elif t in VENUE_SYMBOL_TYPES:
        stream = record.venue  # type: ignore[union-attr]
    else:
        stream = "binance"
    prev = last.get(stream)
    seq = record.seq
    if prev is not None and seq > prev + 1:
        gaps[stream] = gaps.get(stream, 0) + seq - prev - 1
    if prev is None or seq > prev:
        last[stream] = seq

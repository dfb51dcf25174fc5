"""Every book of a store at once, rebuilt from columns: a vectorised last-write-wins instead of a
Python step per level change.

:func:`every_book` reads the ticks WAL as columns (:mod:`shriven.replay.colscan`) and gives the
books a :class:`~shriven.book.BookKeeper` fed every record in write order would hold as valid at
the end, with the keeper's counts of book changes. The book at the end is last-write-wins per
(side, price) over the rows that reach it:

- a Kite book is the levels of its last full tick;
- a Binance spot book is its last snapshot, then the diffs the depth-sync rules apply after it.
  Those rules are checked on the id columns at once. The buffered diffs before the first
  snapshot and the diffs after each snapshot must be in sequence: the first one the snapshot
  leaves kept straddles it (``U <= lastUpdateId + 1 < u + 1``), each later one starts where the
  previous ended (``U == previous u + 1``). Stale diffs are allowed only before that first one,
  and only as many as the keeper allows. Ids must be sane (``U <= u``, spans within 10^9).

A book for which any of that does not hold is rebuilt by a real :class:`BookKeeper` from its own
records: a gap, a restart that leaves a hole, a Status gap marker, futures depth (pu-chained), or
a level that is not a plain decimal. Books are independent, so the rest stay columnar. The
answer equals the keeper's, book by book (tests/replay/test_allbooks.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np

from shriven.book import BookKeeper, OrderBook
from shriven.book.depth_sync import DEFAULT_MAX_BUFFER, MAX_ID_JUMP, MAX_STALE_RUN
from shriven.events import instrument_key
from shriven.replay.colscan import DIFF, KITE, NONE, SLOW, SNAPSHOT, scan_wal
from shriven.replay.store import StoreReader

__all__ = ["EveryBook", "every_book"]

Level = tuple[float, float]
_STALE_LIMIT: Final = MAX_STALE_RUN * 100  # stale diffs allowed after a snapshot, first excluded


@dataclass(slots=True)
class EveryBook:
    """The valid books at the end (key -> (bids, asks), best first) and how they were made."""

    books: dict[str, tuple[list[Level], list[Level]]] = field(default_factory=dict)
    changes: int = 0  # diffs applied + snapshots that (re)started a book + Kite full ticks
    levels: int = 0  # level changes those carried
    records: int = 0  # records read
    by_keeper: list[str] = field(default_factory=list)  # books the columns could not rebuild


@dataclass(slots=True)
class _Store:
    kind: np.ndarray
    key: np.ndarray
    first: np.ndarray
    last: np.ndarray
    recv: np.ndarray
    row_event: np.ndarray  # each level row's event index
    side: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    keys: list[str]
    records: int
    row_start: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    row_count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        # Rows are in event order (records are scanned in order), so an event's rows are one
        # contiguous range: its count and where it starts.
        self.row_count = np.bincount(self.row_event, minlength=len(self.kind)).astype(np.int64)
        self.row_start = np.concatenate([[0], np.cumsum(self.row_count)])

    def rows_of(self, events: np.ndarray) -> np.ndarray:
        """Indices of the level rows of ``events``, in the order given."""
        counts = self.row_count[events]
        total = int(counts.sum())
        if not total:
            return np.zeros(0, np.int64)
        ends = np.cumsum(counts)
        offsets = np.repeat(self.row_start[events] - (ends - counts), counts)
        return offsets + np.arange(total)


def read_events(
    reader: StoreReader, end_ns: int | None, only: str | None = None, kite_last: bool = False
) -> _Store:
    """The book events (records with a book kind) of the ticks WAL, with their level rows
    (``only``: of that book alone). ``kite_last``: keep a Kite tick's rows only when it is its
    book's last in the frame (a tick replaces the book: the earlier ones' rows never reach the
    end), which halves the rows of a store with many Kite books."""
    names: dict[str, int] = {}
    parts: list[tuple[np.ndarray, ...]] = []
    events = records = 0
    for cols in scan_wal(reader.ticks, None, end_ns, only):
        records += len(cols)
        gmap = np.array([names.setdefault(k, len(names)) for k in cols.keys] or [0], np.int32)
        sel = np.flatnonzero(cols.kind != NONE)
        local_to_event = np.full(len(cols), -1, np.int64)
        local_to_event[sel] = np.arange(events, events + len(sel))
        side, price, qty, level_row = (
            cols.level_side,
            cols.level_price,
            cols.level_qty,
            cols.level_row,
        )
        if kite_last:
            kite = np.flatnonzero(cols.kind == KITE)
            if len(kite) > 1:
                _, last_rev = np.unique(cols.key[kite][::-1], return_index=True)
                keep = np.ones(len(cols), bool)
                keep[kite] = False
                keep[kite[len(kite) - 1 - last_rev]] = True
                rows = keep[level_row]
                side, price, qty, level_row = side[rows], price[rows], qty[rows], level_row[rows]
        ev = local_to_event[level_row]
        parts.append(
            (
                cols.kind[sel],
                gmap[cols.key[sel]],
                cols.first_id[sel],
                cols.last_id[sel],
                cols.recv_ns[sel],
                ev,
                side,
                price,
                qty,
            )
        )
        events += len(sel)
    if not parts:
        empty = np.zeros(0)
        return _Store(*(empty.astype(t) for t in "BillllBdd"), keys=[], records=0)  # type: ignore[arg-type]
    arrays = [np.concatenate(p) for p in zip(*parts, strict=True)]
    return _Store(*arrays, keys=list(names), records=records)  # type: ignore[arg-type]


def _sane(first: np.ndarray, last: np.ndarray) -> bool:
    return not ((last < first).any() or (last - first > MAX_ID_JUMP).any())


def _in_sequence(first: np.ndarray, last: np.ndarray, snap_id: int) -> int:
    """How many of these diffs (after one snapshot, led by the ones buffered before it that it
    does not cover) the sync rules apply, or -1 when the columns cannot say (the keeper must)."""
    n = len(first)
    if n == 0:
        return 0
    if not _sane(first, last):
        return -1
    kept = np.flatnonzero(last > snap_id)
    m = int(kept[0]) if len(kept) else n
    if m >= _STALE_LIMIT:
        return -1
    stale_first, stale_last = first[:m], last[:m]
    if (np.abs(stale_first - snap_id) > MAX_ID_JUMP).any() or (
        snap_id - stale_last > MAX_ID_JUMP
    ).any():
        return -1
    if m == n:
        return 0
    if not (first[m] <= snap_id + 1 and abs(int(first[m]) - snap_id) <= MAX_ID_JUMP):
        return -1
    if (first[m + 1 :] != last[m:-1] + 1).any():
        return -1
    return n - m


@dataclass(slots=True)
class Run:
    """One snapshot of a Binance book and what the sync rules apply after it (event indices)."""

    snapshot: int
    released: np.ndarray  # diffs buffered before the snapshot that it releases, in order
    applied: np.ndarray  # diffs after the snapshot applied, in order


def binance_runs(st: _Store, ev: np.ndarray) -> list[Run] | None:
    """A Binance book's runs, one per snapshot (none: the book never started), or None when the
    columns cannot say what the keeper does (it must rebuild the book)."""
    kinds = st.kind[ev]
    if ((kinds != DIFF) & (kinds != SNAPSHOT)).any():
        return None
    snaps = np.flatnonzero(kinds == SNAPSHOT)
    if len(snaps) == 0:
        return []  # never started: buffered diffs only
    pre = ev[: snaps[0]]
    if len(pre) > DEFAULT_MAX_BUFFER:
        return None
    if not _sane(st.first[pre], st.last[pre]) or (
        len(pre) > 1 and (st.first[pre[1:]] != st.last[pre[:-1]] + 1).any()
    ):
        return None
    runs: list[Run] = []
    for j, s in enumerate(snaps):
        end = snaps[j + 1] if j + 1 < len(snaps) else len(ev)
        seg = ev[s + 1 : end]
        snap_id = int(st.first[ev[s]])
        released = ev[:0]
        if j == 0 and len(pre):
            # buffered diffs the snapshot covers are dropped unread; the rest lead the segment
            released = pre[st.last[pre] > snap_id]
            seg = np.concatenate([released, seg])
        applied = _in_sequence(st.first[seg], st.last[seg], snap_id)
        if applied < 0:
            return None
        # released diffs all end after the snapshot (u > lastUpdateId), so when there are any
        # nothing is stale and every diff of the segment is applied, the released ones first
        done = seg[len(seg) - applied :]
        runs.append(Run(int(ev[s]), released, done[len(released) :]))
    return runs


def _lww(st: _Store, events: np.ndarray) -> tuple[list[Level], list[Level]]:
    """The book the level rows of ``events`` make, applied in order (last write wins)."""
    rows = st.rows_of(events)
    side, price, qty = st.side[rows], st.price[rows], st.qty[rows]
    if np.signbit(price).any():  # a negative Kite price: sort on (side, price, position)
        order = np.lexsort((np.arange(len(price)), price, side))
        side, price, qty = side[order], price[order], qty[order]
        last = np.ones(len(price), bool)
        if len(price) > 1:
            last[:-1] = (side[1:] != side[:-1]) | (price[1:] != price[:-1])
    else:
        # One sort key: a non-negative double's bits order as the double does, and its sign bit
        # is free for the side. The first of each key in reverse order is the last write.
        key = price.view(np.uint64) | (side.astype(np.uint64) << np.uint64(63))
        _, first_rev = np.unique(key[::-1], return_index=True)
        pick = len(key) - 1 - first_rev
        side, price, qty = side[pick], price[pick], qty[pick]
        last = np.ones(len(price), bool)
    keep = last & (qty != 0)
    side, price, qty = side[keep], price[keep], qty[keep]
    bid = side == 0
    bids = list(zip(price[bid][::-1].tolist(), qty[bid][::-1].tolist(), strict=True))
    asks = list(zip(price[~bid].tolist(), qty[~bid].tolist(), strict=True))
    return bids, asks


def every_book(reader: StoreReader, end_ns: int | None = None) -> EveryBook:
    """Every book valid after the records with ``recv_ns < end_ns`` (all when None), in write
    order, as a :class:`BookKeeper` fed them would hold them."""
    st = read_events(reader, end_ns, kite_last=True)
    out = EveryBook(records=st.records)
    order = np.argsort(st.key, kind="stable")
    bounds = np.flatnonzero(np.diff(st.key[order])) + 1
    groups = np.split(order, bounds) if len(order) else []
    keeper_keys: set[str] = set()
    counts = [0, 0]
    for ev in groups:
        name = st.keys[int(st.key[ev[0]])]
        kinds = st.kind[ev]
        if name.startswith("binance:"):
            runs = binance_runs(st, ev)
            if runs is None:
                keeper_keys.add(name)
                continue
            for run in runs:
                counts[0] += 1 + len(run.released) + len(run.applied)
                counts[1] += int(st.row_count[run.released].sum())
                counts[1] += int(st.row_count[run.applied].sum())
            if runs:
                # the snapshot replaces the book (its zero quantities left out, as
                # OrderBook.replace does), then each diff sets or removes: last write wins
                run = runs[-1]
                rows = np.concatenate([[run.snapshot], run.released, run.applied])
                out.books[name] = _lww(st, rows.astype(np.int64))
        elif name.startswith("kite:"):
            if (kinds == SLOW).any():
                keeper_keys.add(name)
                continue
            ticks = ev[kinds == KITE]
            if len(ticks):
                counts[0] += len(ticks)  # a replace: the keeper counts no level changes
                out.books[name] = _lww(st, ticks[-1:])
        elif (kinds == SLOW).any():  # futures depth
            keeper_keys.add(name)
    # A Status gap on a key no diff or snapshot names does nothing in the keeper (it has no
    # depth sync); on a Binance book it sent that book to the keeper above.
    out.changes, out.levels = counts
    if keeper_keys:
        _by_keeper(reader, end_ns, keeper_keys, out)
    return out


def _by_keeper(reader: StoreReader, end_ns: int | None, keys: set[str], out: EveryBook) -> None:
    keeper = BookKeeper()
    for r in reader.ticks.records(None, end_ns):
        if instrument_key(r) in keys:
            keeper.apply(r)
    st = keeper.stats
    out.changes += st.applied + st.snapshots + st.kite_depth
    out.levels += st.levels
    for key in sorted(keys):
        book: OrderBook | None = keeper.books.get(key)
        if book is not None and keeper.is_valid(key):
            out.books[key] = book.levels()
    out.by_keeper = sorted(keys)

"""Per-instrument columnar index of sealed tick segments (``segment_N.books`` beside each), and
the Binance book at an instant read from it without decoding any other instrument.

A sidecar holds, for every Binance symbol in the segment, its depth diffs as columns (receive
time, ``U``, ``u``, and each side's prices and quantities as float64, the values the book keeper
would apply) and, in write order, the symbol's *events*: runs of diffs whose update ids follow
each other (``U == previous u + 1``) with non-decreasing receive times, REST snapshots, the
symbol's status markers, and the daemon starts. Diffs the keeper refuses (a price "abc") are left
out, as the keeper ignores them.

:func:`binance_book_at` replays those events through the same :class:`DepthSync` rules the keeper
uses, one decision per run rather than per diff: once a diff of a run is applied to a live book,
every later diff of the run continues it, so the run's levels are set in one C-level
``dict.update`` each side (last write wins per price). Its answer equals
:func:`shriven.replay.reconstruct.book_at`'s (tests compare both on random and recorded stores).

A sidecar is valid for the segment it names (number, creation time, size): a segment that grew
or was truncated by recovery makes it stale, and it is then ignored. The recorder writes each
segment's sidecar when rotation seals it (:class:`shriven.replay.indexer.SidecarIndexer`, a
worker thread); ``shriven replay index`` writes those still missing. A read never writes.
"""

from __future__ import annotations

import sys
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgpack

from shriven.book import OrderBook
from shriven.book.depth_sync import APPLY, GAP, DepthSync
from shriven.book.levels import pack_levels
from shriven.events import (
    WIRE_RECV_NS,
    BinanceDepth,
    BinanceDepthSnapshot,
    BookSnapshot,
    StatusKind,
    decode_wire,
    wire_is_start,
)
from shriven.files import atomic_write
from shriven.wal import ReadStats, list_segments
from shriven.wal.format import SEGMENT_HEADER_SIZE, parse_segment_header
from shriven.wal.reader import WalReader, segment_frames

__all__ = [
    "SIDECAR_SUFFIX",
    "BookIndex",
    "SegmentColumns",
    "binance_book_at",
    "build_columns",
    "load_columns",
    "sidecar_path",
    "write_sidecar",
    "write_sidecars",
]

SIDECAR_SUFFIX: Final = ".books"
SIDECAR_MAGIC: Final = b"SHRVBKS\x00"
SIDECAR_VERSION: Final = 1
_MAX_ID_JUMP: Final = 10**9  # depth_sync.MAX_ID_JUMP: a run never spans a jump the sync refuses

# event codes in a symbol's event list
RUN: Final = 0  # [RUN, first diff, end diff]
SNAP: Final = 1  # [SNAP, recv_ns, lastUpdateId, bid lo, bid hi, ask lo, ask hi]
STATUS: Final = 2  # [STATUS, recv_ns, kind]
START: Final = 3  # [START, recv_ns]

_LITTLE = sys.byteorder == "little"
_NO_START: Final = -(1 << 63)
_NO_END: Final = (1 << 63) - 1
_STARTED: Final = msgpack.packb("started")


def sidecar_path(segment: Path) -> Path:
    return segment.with_suffix(SIDECAR_SUFFIX)


def _to_bytes(a: array) -> bytes:
    if not _LITTLE:
        a = array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


def _from_bytes(code: str, data: bytes) -> array:
    a = array(code)
    a.frombytes(data)
    if not _LITTLE:
        a.byteswap()
    return a


def _floats(levels: tuple[tuple[str, str], ...]) -> list[tuple[float, float]] | None:
    """The levels as the keeper applies them, or None when the keeper refuses the record (a value
    that is not a finite, non-negative number): the keeper's own rule, book.levels.pack_levels."""
    packed = pack_levels(levels)
    if packed is None:
        return None
    values = array("d", packed)
    return list(zip(values[0::2], values[1::2], strict=True))


_INT_COLUMNS: Final = ("recv", "first", "last", "bid_at", "ask_at")
_FLOAT_COLUMNS: Final = ("bid_px", "bid_qty", "ask_px", "ask_qty")


@dataclass(slots=True)
class SymbolColumns:
    """One symbol's diffs as columns and its events, in one segment."""

    recv: array = field(default_factory=lambda: array("q"))
    first: array = field(default_factory=lambda: array("q"))
    last: array = field(default_factory=lambda: array("q"))
    bid_at: array = field(default_factory=lambda: array("q", [0]))  # level offsets, n + 1
    ask_at: array = field(default_factory=lambda: array("q", [0]))
    bid_px: array = field(default_factory=lambda: array("d"))
    bid_qty: array = field(default_factory=lambda: array("d"))
    ask_px: array = field(default_factory=lambda: array("d"))
    ask_qty: array = field(default_factory=lambda: array("d"))
    snap_bid: list = field(default_factory=list)  # [(price, qty), ...] per snapshot, flattened
    snap_ask: list = field(default_factory=list)
    events: list = field(default_factory=list)

    def add_diff(self, d: BinanceDepth, bids: list, asks: list) -> None:
        n = len(self.recv)
        ev = self.events
        run = ev[-1] if ev and ev[-1][0] == RUN and ev[-1][2] == n else None
        if (
            run is None
            or d.first_update_id != self.last[n - 1] + 1
            or d.recv_ns < self.recv[n - 1]
            or d.last_update_id < d.first_update_id
            or d.last_update_id - d.first_update_id > _MAX_ID_JUMP
        ):
            ev.append([RUN, n, n + 1])
        else:
            run[2] = n + 1
        self.recv.append(d.recv_ns)
        self.first.append(d.first_update_id)
        self.last.append(d.last_update_id)
        for p, q in bids:
            self.bid_px.append(p)
            self.bid_qty.append(q)
        for p, q in asks:
            self.ask_px.append(p)
            self.ask_qty.append(q)
        self.bid_at.append(len(self.bid_px))
        self.ask_at.append(len(self.ask_px))

    def add_snapshot(self, s: BinanceDepthSnapshot, bids: list, asks: list) -> None:
        b0 = len(self.snap_bid)
        a0 = len(self.snap_ask)
        self.snap_bid.extend(bids)
        self.snap_ask.extend(asks)
        self.events.append(
            [SNAP, s.recv_ns, s.last_update_id, b0, len(self.snap_bid), a0, len(self.snap_ask)]
        )

    def pack(self) -> dict:
        doc: dict = {name: _to_bytes(getattr(self, name)) for name in _INT_COLUMNS + _FLOAT_COLUMNS}
        sb = array("d", [x for lvl in self.snap_bid for x in lvl])
        sa = array("d", [x for lvl in self.snap_ask for x in lvl])
        doc["snap_bid"] = _to_bytes(sb)
        doc["snap_ask"] = _to_bytes(sa)
        doc["events"] = self.events
        return doc

    @classmethod
    def unpack(cls, doc: dict) -> SymbolColumns:
        out = cls()
        for name in _INT_COLUMNS:
            setattr(out, name, _from_bytes("q", doc[name]))
        for name in _FLOAT_COLUMNS:
            setattr(out, name, _from_bytes("d", doc[name]))
        for name in ("snap_bid", "snap_ask"):
            flat = _from_bytes("d", doc[name])
            setattr(out, name, list(zip(flat[0::2], flat[1::2], strict=True)))
        out.events = [list(e) for e in doc["events"]]
        return out


@dataclass(slots=True)
class SegmentColumns:
    """The columnar index of one segment: who it is for, the daemon starts, each symbol."""

    number: int
    created_ns: int
    size: int
    starts: list[int] = field(default_factory=list)
    symbols: dict[str, SymbolColumns] = field(default_factory=dict)
    min_ns: int = _NO_END  # receive times of the segment's frames (headers), all records
    max_ns: int = _NO_START


def build_columns(
    path: Path,
    *,
    strict: bool = True,
    is_last: bool = False,
    stats: ReadStats | None = None,
    only: str | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> SegmentColumns:
    """Read one tick segment and gather every Binance symbol's columns and events (``only``:
    one symbol's; frames without its name or a daemon start are then not unpacked, as
    ``StoreReader.tick_records_for`` does). A damaged frame raises (``strict``) or is skipped
    and counted in ``stats``, as replay's reads do. Frames wholly outside ``[start_ns, end_ns)``
    are passed unread, as the reader's time-range scans pass them."""
    stats = stats if stats is not None else ReadStats()
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = parse_segment_header(f.read(SEGMENT_HEADER_SIZE), path)
    out = SegmentColumns(head.number, head.created_ns, size)
    reader = WalReader(path.parent, strict=strict)
    reader.stats = stats
    syms = out.symbols
    needles = (msgpack.packb(only), _STARTED) if only is not None else ()
    frames = segment_frames(
        path, strict=strict, is_last=is_last, stats=stats, start_ns=start_ns, end_ns=end_ns
    )
    for frame in frames:
        out.min_ns = min(out.min_ns, frame.min_ns)
        out.max_ns = max(out.max_ns, frame.max_ns)
        if needles and not any(n in frame.payload for n in needles):
            continue
        for w in reader.batch(frame):
            t = w[0]
            if only is not None and t != 6 and w[4] != only:
                continue
            if t == 3 or t == 4:
                r = decode_wire(w)
                bids = _floats(r.bids)  # type: ignore[union-attr]
                asks = _floats(r.asks)  # type: ignore[union-attr]
                if bids is None or asks is None:
                    continue  # the keeper refuses it: as if it were not there
                cols = syms.get(r.symbol)  # type: ignore[union-attr]
                if cols is None:
                    cols = syms[r.symbol] = SymbolColumns()  # type: ignore[union-attr]
                    cols.events.extend([START, s] for s in out.starts)
                if t == 3:
                    cols.add_diff(r, bids, asks)  # type: ignore[arg-type]
                else:
                    cols.add_snapshot(r, bids, asks)  # type: ignore[arg-type]
            elif t == 6:
                if wire_is_start(w):
                    recv = w[WIRE_RECV_NS]
                    decode_wire(w)
                    out.starts.append(recv)
                    for cols in syms.values():
                        cols.events.append([START, recv])
                elif w[4] == "binance" and (only is None or w[6] == only):
                    s = decode_wire(w)
                    cols = syms.get(s.instrument)  # type: ignore[union-attr]
                    if cols is None:
                        cols = syms[s.instrument] = SymbolColumns()  # type: ignore[union-attr]
                        cols.events.extend([START, x] for x in out.starts)
                    cols.events.append([STATUS, s.recv_ns, s.kind])  # type: ignore[union-attr]
    return out


def _encode(cols: SegmentColumns) -> bytes:
    """Header (magic, CRC and length of the header, msgpack header) then one msgpack section
    per symbol; the header names each section's offset, length and CRC, so a reader of one
    symbol reads only its section."""
    sections = [(k, msgpack.packb(v.pack(), use_bin_type=True)) for k, v in cols.symbols.items()]
    table = {}
    offset = 0
    for k, blob in sections:
        table[k] = [offset, len(blob), zlib.crc32(blob)]
        offset += len(blob)
    head = msgpack.packb(
        {
            "version": SIDECAR_VERSION,
            "number": cols.number,
            "created_ns": cols.created_ns,
            "size": cols.size,
            "min_ns": cols.min_ns,
            "max_ns": cols.max_ns,
            "starts": cols.starts,
            "symbols": table,
        },
        use_bin_type=True,
    )
    prefix = SIDECAR_MAGIC + zlib.crc32(head).to_bytes(4, "little")
    return prefix + len(head).to_bytes(4, "little") + head + b"".join(b for _k, b in sections)


def load_columns(
    segment: Path, size: int | None = None, only: str | None = None
) -> SegmentColumns | None:
    """The segment's sidecar if it is whole and made for this segment as it is now, else None;
    ``only``: read just that symbol's section."""
    try:
        if size is None:
            size = segment.stat().st_size
        with open(sidecar_path(segment), "rb") as f:
            prefix = f.read(16)
            if len(prefix) < 16 or prefix[:8] != SIDECAR_MAGIC:
                return None
            head = f.read(int.from_bytes(prefix[12:16], "little"))
            if zlib.crc32(head) != int.from_bytes(prefix[8:12], "little"):
                return None
            doc = msgpack.unpackb(head, raw=False)
            if doc["version"] != SIDECAR_VERSION or doc["size"] != size:
                return None
            with open(segment, "rb") as seg:
                header = parse_segment_header(seg.read(SEGMENT_HEADER_SIZE), segment)
            if header.number != doc["number"] or header.created_ns != doc["created_ns"]:
                return None
            base = 16 + len(head)
            symbols: dict[str, SymbolColumns] = {}
            for k, (offset, length, crc) in doc["symbols"].items():
                if only is not None and k != only:
                    continue
                f.seek(base + offset)
                blob = f.read(length)
                if len(blob) != length or zlib.crc32(blob) != crc:
                    return None
                symbols[k] = SymbolColumns.unpack(msgpack.unpackb(blob, raw=False))
    except (ValueError, KeyError, TypeError, OSError, msgpack.UnpackException):
        return None
    return SegmentColumns(
        doc["number"],
        doc["created_ns"],
        size,
        list(doc["starts"]),
        symbols,
        doc["min_ns"],
        doc["max_ns"],
    )


def write_sidecar(segment: Path) -> bool:
    """Write the sidecar of the sealed ``segment`` unless a valid one is there; True when it
    wrote one. Raises WalCorruptionError for a damaged segment (nothing is written)."""
    if load_columns(segment) is not None:
        return False
    atomic_write(sidecar_path(segment), _encode(build_columns(segment, strict=True)), mode=0o644)
    return True


def write_sidecars(ticks_dir: Path, *, rebuild: bool = False) -> tuple[int, int]:
    """Write the sidecar of every sealed tick segment (all but the newest) that lacks a valid
    one (every one with ``rebuild``). Returns (written, already valid). Raises
    WalCorruptionError for a damaged segment (its sidecar is not written)."""
    segments = list_segments(ticks_dir)
    written = valid = 0
    for _number, path in segments[:-1]:
        if not rebuild and load_columns(path) is not None:
            valid += 1
            continue
        cols = build_columns(path, strict=True)
        atomic_write(sidecar_path(path), _encode(cols), mode=0o644)
        written += 1
    return written, valid


class BookIndex:
    """The columns of the tick segments of a store that can hold records received in
    ``[start_ns, end_ns)``, in write order: sidecars for sealed segments, built in memory for
    the newest. ``complete`` is False when a sealed segment has no valid sidecar (callers then
    take the record-by-record path). ``only``: one symbol's columns."""

    def __init__(
        self,
        ticks_dir: Path,
        *,
        strict: bool = True,
        stats: ReadStats | None = None,
        only: str | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> None:
        self.segments: list[SegmentColumns] = []
        self.stats = stats if stats is not None else ReadStats()
        self.complete = True
        lo = _NO_START if start_ns is None else start_ns
        hi = _NO_END if end_ns is None else end_ns
        found = list_segments(ticks_dir)
        for i, (_n, path) in enumerate(found):
            last = i == len(found) - 1
            cols = None if last else load_columns(path, only=only)
            if cols is None:
                if not last:
                    self.complete = False
                    return
                cols = build_columns(
                    path,
                    strict=strict,
                    is_last=True,
                    stats=self.stats,
                    only=only,
                    start_ns=start_ns,
                    end_ns=end_ns,
                )
            elif cols.max_ns < lo or cols.min_ns >= hi:
                continue  # no record of it is in the range
            self.segments.append(cols)

    def restart_times(self) -> list[int]:
        return [t for seg in self.segments for t in seg.starts]


# ---------------------------------------------------------------- the book at an instant


@dataclass(slots=True)
class _Replay:
    """One Binance book rebuilt the way Rebuilder + BookKeeper rebuild it, from events."""

    seed: BookSnapshot | None
    run_start: int
    pending: BookSnapshot | None = None
    floor: BookSnapshot | None = None
    sync: DepthSync | None = None  # None: no book yet (the keeper creates it at the first diff)
    bids: dict = field(default_factory=dict)
    asks: dict = field(default_factory=dict)
    update_id: int = 0
    changes: int = 0

    def counts(self, recv: int, after: bool) -> None:
        if self.seed is None or (recv >= self.run_start and after):
            self.changes += 1

    def restart(self) -> None:
        self.pending = None
        self.floor = None
        self.sync = None
        self.bids = {}
        self.asks = {}
        self.update_id = 0

    def seed_now(self) -> None:
        seed = self.pending
        assert seed is not None
        self.pending = None
        if self.sync is None:
            self.sync = DepthSync()
        self.sync.restore(seed.update_id)
        self.bids = dict(seed.bids)
        self.asks = dict(seed.asks)
        self.update_id = seed.update_id
        self.floor = seed

    def _levels(self, cols: SymbolColumns, a: int, b: int) -> None:
        """Diffs a..b-1 of ``cols`` set on the book (the last write of a price wins)."""
        lo, hi = cols.bid_at[a], cols.bid_at[b]
        if hi > lo:
            self.bids.update(zip(cols.bid_px[lo:hi], cols.bid_qty[lo:hi], strict=True))
        lo, hi = cols.ask_at[a], cols.ask_at[b]
        if hi > lo:
            self.asks.update(zip(cols.ask_px[lo:hi], cols.ask_qty[lo:hi], strict=True))
        self.update_id = cols.last[b - 1]

    def run(self, cols: SymbolColumns, a: int, b: int) -> None:
        """Diffs a..b-1 (in sequence, receive times non-decreasing) reach the book."""
        first, last, recv = cols.first, cols.last, cols.recv
        while a < b:
            if self.pending is not None:
                # The seed starts just before its first later record; those before it are
                # already inside the snapshot and their effect is replaced by it.
                k = bisect_right(last, self.pending.update_id, a, b)
                if k >= b:
                    return
                a = k
                self.seed_now()
            if self.floor is not None:
                a = bisect_right(last, self.floor.update_id, a, b)
                if a >= b:
                    return
            if self.sync is None:
                self.sync = DepthSync()
                self.bids, self.asks = {}, {}
            sync = self.sync
            if sync.live:
                outcome = sync.on_diff(first[a], last[a], (cols, a))
                if outcome == APPLY:
                    self._levels(cols, a, a + 1)
                    self.counts(recv[a], True)
                    a += 1
                    if a < b:  # the rest of the run continues it: every diff applies
                        sync.last_update_id = last[b - 1]
                        self._levels(cols, a, b)
                        if self.seed is None:
                            self.changes += b - a
                        else:
                            self.changes += b - bisect_left(recv, self.run_start, a, b)
                    return
                if outcome == GAP:
                    self.counts(recv[a], True)
                a += 1
                continue
            sync.on_diff(first[a], last[a], (cols, a))  # buffered while waiting for a snapshot
            a += 1

    def snapshot(self, cols: SymbolColumns, ev: list) -> None:
        _code, recv, uid, b0, b1, a0, a1 = ev
        if self.pending is not None and uid > self.pending.update_id:
            self.seed_now()
        if self.floor is not None and uid <= self.floor.update_id:
            return
        if self.sync is None:
            self.sync = DepthSync()
            self.bids, self.asks = {}, {}
        result = self.sync.on_snapshot(uid)
        if not result.usable:
            return
        self.bids = dict(cols.snap_bid[b0:b1])
        self.asks = dict(cols.snap_ask[a0:a1])
        self.update_id = uid
        for owner, i in result.apply:
            self._levels(owner, i, i + 1)
        self.counts(recv, self.seed is None or uid > self.seed.update_id)

    def status(self, recv: int, kind: str) -> None:
        if self.pending is not None and recv > self.pending.recv_ns:
            self.seed_now()
        if self.floor is not None and recv <= self.floor.recv_ns:
            return
        if kind == StatusKind.GAP and self.sync is not None and self.sync.invalidate():
            self.counts(recv, self.seed is None or recv > self.seed.recv_ns)

    def book(self) -> OrderBook | None:
        if self.sync is None:
            return None
        return OrderBook(self.bids.items(), self.asks.items(), self.update_id)


def _restart_before(seed: BookSnapshot, starts: Iterable[int], margin_ns: int) -> int:
    return max((t for t in starts if seed.recv_ns - margin_ns <= t <= seed.recv_ns), default=-1)


def binance_book_at(
    index: BookIndex, symbol: str, at_ns: int, seed: BookSnapshot | None, margin_ns: int
) -> tuple[OrderBook | None, bool, int]:
    """``binance:<symbol>``'s book as :func:`~shriven.replay.reconstruct.book_at` gives it:
    (book or None, valid, changes after the seed). ``seed`` is the snapshot it starts from."""
    lo = -(1 << 63) if seed is None else seed.recv_ns - margin_ns
    hi = at_ns + 1
    starts = index.restart_times()
    run_start = -1 if seed is None else _restart_before(seed, starts, margin_ns)
    rep = _Replay(seed, run_start)
    to_skip = 0
    if seed is not None:
        to_skip = sum(1 for t in starts if lo <= t < hi and t <= seed.recv_ns)
        if not to_skip:
            rep.pending = seed
    for seg in index.segments:
        cols = seg.symbols.get(symbol)
        if cols is None:
            events: list = [[START, t] for t in seg.starts]
        else:
            events = cols.events
        for ev in events:
            code = ev[0]
            if code == RUN:
                a, b = ev[1], ev[2]
                recv = cols.recv  # type: ignore[union-attr]
                if recv[a] < lo or recv[b - 1] >= hi:
                    a = bisect_left(recv, lo, a, b)
                    b = bisect_left(recv, hi, a, b)
                if a < b:
                    rep.run(cols, a, b)  # type: ignore[arg-type]
                continue
            recv = ev[1]
            if not lo <= recv < hi:
                continue
            if code == START:
                rep.restart()
                if seed is not None and to_skip:
                    to_skip -= 1
                    if not to_skip:
                        rep.pending = seed
            elif code == SNAP:
                rep.snapshot(cols, ev)  # type: ignore[arg-type]
            else:
                rep.status(recv, ev[2])
    if rep.pending is not None:
        rep.seed_now()
    sync = rep.sync
    return rep.book(), sync is not None and sync.live, rep.changes

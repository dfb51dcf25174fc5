"""Reading a store (``data_dir/ticks`` and ``data_dir/lob``) for replay: time ranges through the
WAL's sparse index, one instrument's records for books, the nearest book snapshot."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgpack

from shriven.errors import ReplayError
from shriven.events import (
    WIRE_BINANCE_SYMBOL,
    WIRE_KITE_TOKEN,
    WIRE_RECV_NS,
    WIRE_STATUS_INSTRUMENT,
    WIRE_TYPE,
    WIRE_VENUE,
    WIRE_VENUE_SYMBOL,
    BinanceDepth,
    BinanceDepthSnapshot,
    BinanceFuturesDepth,
    BinanceFuturesDepthSnapshot,
    BookSnapshot,
    KiteTick,
    Record,
    Status,
    decode_wire,
    instrument_key,
    wire_is_start,
)
from shriven.replay.ordering import DEFAULT_WINDOW_NS, OrderStats, merge_ordered, reorder
from shriven.replay.select import Selection
from shriven.wal import WalReader, list_segments, skipped_summary

__all__ = ["StoreReader", "wire_filter"]

_HOUR_NS = 3600 * 1_000_000_000
_STARTED = msgpack.packb("started")


@dataclass(slots=True)
class StoreReader:
    """A data directory. ``ticks``/``lob`` readers accumulate what they opened and skipped;
    ``strict=False`` reads past damaged frames (``--skip-damaged``), see :meth:`skipped`."""

    data_dir: Path
    strict: bool = True
    ticks: WalReader = field(init=False)
    lob: WalReader = field(init=False)
    _readers: list[WalReader] = field(init=False, default_factory=list)
    order: OrderStats = field(default_factory=OrderStats)
    frames_unpacked: int = 0  # by tick_records_for: frames that may hold the instrument
    frames_skipped: int = 0  # by tick_records_for: frames that cannot

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        ticks_dir = self.data_dir / "ticks"
        lob_dir = self.data_dir / "lob"
        if not ticks_dir.is_dir() and not lob_dir.is_dir():
            raise ReplayError(
                f"{self.data_dir} is not a shriven store (no ticks/ or lob/ directory): give the "
                "data directory the daemon recorded into (--data-dir, SHRIVEN_PIPELINE__DATA_DIR)"
            )
        self.ticks = WalReader(ticks_dir, strict=self.strict)
        self.lob = WalReader(lob_dir, strict=self.strict)
        self._readers = [self.ticks, self.lob]

    def skipped(self) -> str:
        """What the reads so far skipped as damaged, and where, as one line ("" if nothing)."""
        return skipped_summary(*(r.stats for r in self._readers))

    # ------------------------------------------------------------ ranges

    def records(
        self,
        selection: Selection,
        start_ns: int | None,
        end_ns: int | None,
        window_ns: int = DEFAULT_WINDOW_NS,
    ) -> Iterator[Record]:
        """Selected records with ``start_ns <= recv_ns < end_ns`` in replay order (see
        :mod:`shriven.replay.ordering`)."""
        sources = []
        match = selection.matches
        if selection.needs_ticks and self.ticks.directory.is_dir():
            raw = self.ticks.records(start_ns, end_ns)
            sources.append(reorder((r for r in raw if match(r)), window_ns, self.order))
        if selection.needs_lob and self.lob.directory.is_dir():
            raw = self.lob.records(start_ns, end_ns)
            sources.append(reorder((r for r in raw if match(r)), window_ns, self.order))
        if not sources:
            return iter(())
        return merge_ordered(*sources)

    def tick_records_for(
        self, key: str, start_ns: int | None, end_ns: int | None
    ) -> Iterator[Record]:
        """Records that can change ``key``'s book (and daemon starts), in write order. A frame
        whose bytes hold none of the instrument's msgpack forms nor ``"started"`` is not
        unpacked; other instruments' records are dropped before they are decoded."""
        keep = wire_filter(key)
        needles = _needles(key)
        lo = -(1 << 63) if start_ns is None else start_ns
        hi = (1 << 63) if end_ns is None else end_ns
        for frame in self.ticks.frames(start_ns, end_ns):
            payload = frame.payload
            if not any(n in payload for n in needles):
                self.frames_skipped += 1
                continue
            self.frames_unpacked += 1
            inside = lo <= frame.min_ns and frame.max_ns < hi
            for w in self.ticks.batch(frame):
                if keep(w) and (inside or lo <= w[WIRE_RECV_NS] < hi):
                    yield decode_wire(w)

    def restart_times(self, start_ns: int | None = None, end_ns: int | None = None) -> list[int]:
        """Receive times of the daemon starts (``system``/``started`` status records) in the
        range, in write order. Frames without the word are not unpacked."""
        out: list[int] = []
        reader = WalReader(self.ticks.directory, strict=self.strict)
        self._readers.append(reader)
        lo = -(1 << 63) if start_ns is None else start_ns
        hi = (1 << 63) if end_ns is None else end_ns
        for frame in reader.frames(start_ns, end_ns):
            if _STARTED not in frame.payload:
                continue
            for w in reader.batch(frame):
                if wire_is_start(w) and lo <= w[WIRE_RECV_NS] < hi:
                    out.append(w[WIRE_RECV_NS])
        return out

    def book_keys(self) -> set[str]:
        """``venue:instrument`` of every book snapshot recorded, or of every instrument the
        ticks name when the store holds no snapshot: what an unknown book's name is compared
        with. Reads the whole of lob/ (or ticks/); for error messages."""
        for reader, books_only in ((self.lob, True), (self.ticks, False)):
            if not reader.directory.is_dir():
                continue
            keys = {
                key
                for r in reader.records(None, None)
                if (not books_only or type(r) is BookSnapshot)
                and not (key := instrument_key(r)).endswith(":")
            }
            if keys:
                return keys
        return set()

    def snapshots(self, start_ns: int | None = None, end_ns: int | None = None) -> Iterator[Record]:
        return self.lob.records(start_ns, end_ns)

    def snapshot_before(self, key: str, at_ns: int) -> BookSnapshot | None:
        """The last snapshot of ``key`` taken at or before ``at_ns``: looks back five minutes,
        then an hour, a day, a week, then over the whole store, each through the index."""
        venue, _, instrument = key.partition(":")
        if not self.lob.directory.is_dir() or not list_segments(self.lob.directory):
            return None
        for back in (_HOUR_NS // 12, _HOUR_NS, 24 * _HOUR_NS, 7 * 24 * _HOUR_NS, None):
            start = None if back is None else at_ns - back
            best: BookSnapshot | None = None
            for r in self.lob.records(start, at_ns + 1):
                if (
                    type(r) is BookSnapshot
                    and r.instrument == instrument
                    and r.venue == venue
                    and (best is None or r.recv_ns >= best.recv_ns)
                ):
                    best = r
            if best is not None:
                return best
        return None


def _needles(key: str) -> tuple[bytes, ...]:
    """Byte strings one of which is in every frame holding a record of ``key`` or a start:
    the symbol or token exactly as msgpack encodes the record field, and ``"started"``."""
    venue, _, instrument = key.partition(":")
    forms = [msgpack.packb("started"), msgpack.packb(instrument)]
    if venue == "kite" and instrument.isdigit():
        forms.append(msgpack.packb(int(instrument)))
    return tuple(forms)


def wire_filter(key: str) -> Callable[[list], bool]:
    """A test on a record's wire array (see events.py): does it belong to ``key``'s book, or is
    it a daemon start? Kite keys keep full, quote and ltp ticks alike (cheap to decide later)."""
    venue, _, instrument = key.partition(":")
    # closure variables rather than globals and class attributes: the test runs once per record
    at_type, at_token, at_symbol, at_venue, at_instrument = (
        WIRE_TYPE,
        WIRE_KITE_TOKEN,
        WIRE_BINANCE_SYMBOL,
        WIRE_VENUE,
        WIRE_STATUS_INSTRUMENT,
    )
    tick_t, status_t = KiteTick.TYPE, Status.TYPE
    book_ts = frozenset((BinanceDepth.TYPE, BinanceDepthSnapshot.TYPE))
    # Futures books: venue and symbol at WIRE_VENUE and WIRE_VENUE_SYMBOL.
    futures_ts = frozenset((BinanceFuturesDepth.TYPE, BinanceFuturesDepthSnapshot.TYPE))
    at_venue_symbol = WIRE_VENUE_SYMBOL
    if venue == "kite":
        try:
            token = int(instrument)
        except ValueError:
            raise ReplayError(f"bad Kite instrument {instrument!r}: expected a token") from None

        def keep_kite(w: list) -> bool:
            t = w[at_type]
            if t == tick_t:
                return w[at_token] == token
            return t == status_t and (
                wire_is_start(w) or (w[at_venue] == "kite" and w[at_instrument] == instrument)
            )

        return keep_kite

    def keep_binance(w: list) -> bool:
        t = w[at_type]
        if t in book_ts:
            return venue == "binance" and w[at_symbol] == instrument
        if t in futures_ts:
            return w[at_venue] == venue and w[at_venue_symbol] == instrument
        return t == status_t and (
            wire_is_start(w) or (w[at_venue] == venue and w[at_instrument] == instrument)
        )

    return keep_binance

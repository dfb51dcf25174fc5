"""The book of one instrument at any instant, and every state it went through.

The book at instant T is the nearest book snapshot taken at or before T plus every recorded
change received at or before T (see :mod:`shriven.replay.books` for how the changes are matched to
the snapshot). Without a snapshot before T, replay starts at the beginning of the store.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from shriven.book import OrderBook
from shriven.errors import ReplayError
from shriven.events import BookSnapshot
from shriven.replay.books import DEFAULT_MARGIN_NS, BookState, Rebuilder, is_after, is_restart
from shriven.replay.columns import BookIndex, binance_book_at
from shriven.replay.select import InstrumentRow, resolve_symbols
from shriven.replay.store import StoreReader
from shriven.replay.times import load_zone, parse_instant
from shriven.wal.gc import scan_gc

__all__ = [
    "BookAt",
    "book_at",
    "book_states",
    "iter_lob_states",
    "reconstruct_lob_from_ticks",
    "resolve_book_key",
    "to_ns",
]

Instant = int | str | datetime


def to_ns(value: Instant, market_tz: str = "Asia/Kolkata") -> int:
    """Nanoseconds since the epoch from ns, ISO 8601 text or a datetime (naive = market zone)."""
    if isinstance(value, bool):
        raise ReplayError(f"not a time: {value!r}")
    if isinstance(value, int):
        return value
    zone = load_zone(market_tz)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=zone)
        whole = int(value.replace(microsecond=0).timestamp())
        return whole * 1_000_000_000 + value.microsecond * 1000
    return parse_instant(value, zone)


def resolve_book_key(symbol: str | int, instruments: Sequence[InstrumentRow] | None = None) -> str:
    """``binance:BTCUSDT`` / ``kite:256265`` for a symbol, token or key naming ONE book."""
    if isinstance(symbol, int):
        return f"kite:{symbol}"
    text = symbol.strip()
    if text.startswith(("kite:", "binance:")):
        return text
    keys, _ = resolve_symbols([text], instruments)
    if len(keys) != 1:
        raise ReplayError(
            f"{symbol!r} names {len(keys)} instruments; a book needs one: give a trading symbol "
            "or an instrument token"
        )
    return next(iter(keys))


def book_states(
    store: StoreReader,
    key: str,
    start_ns: int | None,
    end_ns: int | None,
    rebuilder: Rebuilder | None = None,
    margin_ns: int = DEFAULT_MARGIN_NS,
    seed: BookSnapshot | bool | None = True,
) -> Iterator[BookState]:
    """Every change to ``key``'s book received in ``[start_ns, end_ns)``, after starting from
    the nearest snapshot at or before ``start_ns``. Pass a ``rebuilder`` to read the final book
    from it afterwards (``rebuilder.book(key)`` once the iterator is exhausted). ``seed``: True
    finds the snapshot, or give one (or None to start at the beginning of the store)."""
    reb = rebuilder if rebuilder is not None else Rebuilder()
    if seed is True:
        seed = store.snapshot_before(key, start_ns) if start_ns is not None else None
    elif seed is False:
        seed = None
    scan_from = None
    to_skip = 0  # daemon starts to pass before the snapshot's run begins
    if seed is not None:
        scan_from = seed.recv_ns - margin_ns
        to_skip = sum(1 for t in store.restart_times(scan_from, end_ns) if t <= seed.recv_ns)
        if not to_skip:
            reb.seed_later(seed)
    stats = reb.keeper.stats
    for record in store.tick_records_for(key, scan_from, end_ns):
        recv = record.recv_ns
        if is_restart(record):
            reb.restart()
            if seed is not None and to_skip:
                to_skip -= 1
                if not to_skip:  # the run the snapshot was taken in starts here
                    reb.seed_later(seed)
            stats = reb.keeper.stats
            continue
        before = stats.applied + stats.snapshots + stats.kite_depth + stats.gaps
        if not reb.apply(record, key):
            continue
        if start_ns is not None and recv < start_ns:
            continue
        if stats.applied + stats.snapshots + stats.kite_depth + stats.gaps != before:
            book = reb.book(key)
            if book is not None:
                yield BookState(recv, record, book, reb.is_valid(key))
    reb.flush_seeds()


@dataclass(slots=True)
class BookAt:
    key: str
    at_ns: int
    book: OrderBook
    valid: bool
    snapshot: BookSnapshot | None  # where the rebuild started (None: start of the store)
    changes: int  # recorded changes applied after the snapshot


def book_at(
    store: StoreReader,
    key: str,
    at_ns: int,
    margin_ns: int = DEFAULT_MARGIN_NS,
    *,
    columns: bool = True,
) -> BookAt:
    """``key``'s book as it was at ``at_ns``: every change received at or before it. A Binance
    book is read from the store's columnar index when every sealed tick segment has one
    (``shriven replay index``; see :mod:`shriven.replay.columns`), else record by record
    (``columns=False`` always reads record by record: the two give equal answers)."""
    seed = store.snapshot_before(key, at_ns)
    venue, _, instrument = key.partition(":")
    if columns and venue == "binance" and store.ticks.directory.is_dir():
        index = BookIndex(
            store.ticks.directory,
            strict=store.strict,
            stats=store.ticks.stats,
            only=instrument,
            start_ns=None if seed is None else seed.recv_ns - margin_ns,
            end_ns=at_ns + 1,
        )
        if index.complete:
            book, valid, changes = binance_book_at(index, instrument, at_ns, seed, margin_ns)
            return BookAt(
                key, at_ns, book if book is not None else OrderBook(), valid, seed, changes
            )
    reb = Rebuilder()
    run_start = -1  # the snapshot's daemon run: earlier runs' changes do not count
    if seed is not None:
        starts = store.restart_times(seed.recv_ns - margin_ns, seed.recv_ns + 1)
        run_start = max(starts, default=-1)
    changes = 0
    for state in book_states(store, key, None, at_ns + 1, reb, margin_ns, seed):
        if seed is None or (state.recv_ns >= run_start and is_after(seed, state.record)):
            changes += 1
    book = reb.book(key)
    return BookAt(
        key, at_ns, book if book is not None else OrderBook(), reb.is_valid(key), seed, changes
    )


# SHRIVEN_MARKET_TZ's default: times without an offset are read in the market's zone
DEFAULT_MARKET_TZ = "Asia/Kolkata"


def iter_lob_states(
    symbol: str | int,
    start: Instant,
    end: Instant,
    *,
    data_dir: str | Path,
    instruments: Sequence[InstrumentRow] | None = None,
    market_tz: str = DEFAULT_MARKET_TZ,
) -> Iterator[BookState]:
    """Every state of ``symbol``'s book, one per change received in ``[start, end)``.

    ``data_dir`` is the store to read. Times: ns since the epoch, ISO 8601 text or datetimes;
    no offset = ``market_tz`` (the CLI passes the configured ``SHRIVEN_MARKET_TZ``)."""
    store = StoreReader(Path(data_dir))
    key = resolve_book_key(symbol, instruments)
    return book_states(store, key, to_ns(start, market_tz), to_ns(end, market_tz))


def reconstruct_lob_from_ticks(
    symbol: str | int,
    start: Instant,
    end: Instant,
    *,
    data_dir: str | Path,
    instruments: Sequence[InstrumentRow] | None = None,
    market_tz: str = DEFAULT_MARKET_TZ,
) -> OrderBook:
    """``symbol``'s book at ``end`` (changes received before ``end``), rebuilt from the nearest
    book snapshot at or before ``start`` plus the recorded changes. For every state in between
    use :func:`iter_lob_states` with the same arguments."""
    store = StoreReader(Path(data_dir))
    key = resolve_book_key(symbol, instruments)
    start_ns, end_ns = to_ns(start, market_tz), to_ns(end, market_tz)
    if end_ns < start_ns:
        raise ReplayError("end is before start: give --end after --start")
    reb = Rebuilder()
    with scan_gc():
        for _state in book_states(store, key, start_ns, end_ns, reb):
            pass
    book = reb.book(key)
    return book if book is not None else OrderBook()

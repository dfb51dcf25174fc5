"""The public replay functions: a time range to a sink, a book at an instant, every snapshot
verified. One copy each, for the CLI, the Python API and the server to come; callers parse their
own arguments and print the returned notes."""

from __future__ import annotations

import errno
import io
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

from shriven.errors import NotRecordedError, ReplayError
from shriven.events import Record
from shriven.files import atomic_output
from shriven.replay import export
from shriven.replay.books import DEFAULT_MARGIN_NS, VerifyReport, verify_books
from shriven.replay.columns import write_sidecars
from shriven.replay.instruments import contract_note, contract_places, instruments_for
from shriven.replay.ordering import DEFAULT_WINDOW_NS, ProgressLine, paced, with_progress
from shriven.replay.reconstruct import BookAt, book_at, resolve_book_key
from shriven.replay.select import (
    RefusedFilter,
    Selection,
    closest_recorded,
    parse_kinds,
    require_recorded,
    resolve_each,
)
from shriven.replay.store import StoreReader
from shriven.replay.times import format_ns, zone_label
from shriven.wal.gc import scan_gc

__all__ = [
    "BookResult",
    "IndexResult",
    "ReplayResult",
    "VerifyResult",
    "index_store",
    "replay_book",
    "replay_range",
    "verify_store",
]

Sink = Path | IO[str] | IO[bytes]


@dataclass(slots=True)
class ReplayResult:
    """What a replay wrote: the record count and the notes for the person who asked (one line
    each, without a command prefix)."""

    records: int
    notes: list[str] = field(default_factory=list)


def replay_range(
    data_dir: Path,
    sink: Sink,
    zone: ZoneInfo,
    *,
    start_ns: int | None = None,
    end_ns: int | None = None,
    symbols: Sequence[str] = (),
    venue: str | None = None,
    kinds: Sequence[str] = (),
    fmt: str = "jsonl",
    speed: float | None = None,
    progress: IO[str] | None = None,
    skip_damaged: bool = False,
    cache_dir: Path | None = None,
    force: bool = False,
    on_note: Callable[[str], None] | None = None,
) -> ReplayResult:
    """Write the records received in ``[start_ns, end_ns)`` of the store at ``data_dir`` to
    ``sink`` in ``fmt`` (table, jsonl, csv, parquet or arrow), ordered by receive time then
    per-stream sequence.

    ``sink`` is a path (written complete or not at all, never inside the store; an existing file
    only with ``force``), a text stream, or a binary stream. ``speed`` paces the output (1 = as
    recorded; None = as fast as possible); ``progress`` gets a progress line. ``symbols``
    (trading symbols, tokens, spot names, Binance symbols; resolved through the instruments
    cached under ``cache_dir`` or recorded in the store) and ``kinds`` narrow the selection.
    Every note is passed to ``on_note`` as soon as it is known and kept in the result. Raises
    ReplayError (or NotRecordedError) for a request that cannot be served."""
    result = ReplayResult(0)

    def note(line: str) -> None:
        result.notes.append(line)
        if on_note is not None:
            on_note(line)

    fmt = fmt.lower()
    if fmt not in export.FORMATS:
        raise ReplayError(f"unknown --format {fmt!r}: use one of {', '.join(export.FORMATS)}")
    out = sink if isinstance(sink, Path) else None
    text_sink = out is None and isinstance(sink, io.TextIOBase)
    if fmt in ("parquet", "arrow") and (out is None and text_sink):
        raise ReplayError(f"--format {fmt} writes a file: give --out FILE.{fmt}")
    if start_ns is not None and end_ns is not None and end_ns <= start_ns:
        raise ReplayError("the range is empty: --end must be after --start")
    if speed is not None and not speed > 0:
        raise ReplayError(f"bad --speed {speed!r}: use max, or a positive factor such as 1 or 10")
    atomic = export.check_out(out, data_dir, force) if out is not None else False
    instruments, inst_note = instruments_for(cache_dir, data_dir) if symbols else (None, "")
    wanted = resolve_each(list(symbols), instruments)
    keys = frozenset(k for _text, ks, _what in wanted for k in ks)
    described = [f"{text}: {what}" for text, _ks, what in wanted]
    if symbols and not keys:
        raise ReplayError(f"--symbol {', '.join(symbols)} selected no instrument")
    selection = Selection(
        parse_kinds(list(kinds)), venue.lower() if venue else None, keys, described, seen=set()
    )
    store = StoreReader(data_dir, strict=not skip_damaged)
    # What each --symbol selected is said once the store has shown it recorded them all: for
    # one it never recorded, the error is the only line.
    symbol_notes = [f"--symbol {line}" for line in described]
    if inst_note and any("not a Kite name" in d for d in described):
        symbol_notes.append(inst_note)
    span = (
        f"[{format_ns(start_ns, zone) if start_ns is not None else 'start of store'}, "
        f"{format_ns(end_ns, zone) if end_ns is not None else 'end of store'})"
    )

    refused = RefusedFilter()
    records: Iterator[Record] = refused(
        store.records(selection, start_ns, end_ns, DEFAULT_WINDOW_NS)
    )
    if wanted:
        where = f"{store.data_dir}" if start_ns is None and end_ns is None else span
        records = require_recorded(records, wanted, selection, where, instruments)
        # The first record decides whether every --symbol was recorded (see require_recorded):
        # taken before anything is written, so a typo prints no header and creates no file.
        with scan_gc():
            first = next(records, None)
        if first is not None:
            records = itertools.chain((first,), records)
    for line in symbol_notes:
        note(line)
    if speed is not None:
        records = paced(records, speed)
    if progress is not None:
        records = with_progress(records, start_ns, end_ns, progress, lambda ns: format_ns(ns, zone))
    columnar = None
    if fmt in ("parquet", "arrow") and not wanted and not selection.venue and speed is None:
        # every record of the chosen kinds: a column at a time, the same bytes 5-6x faster
        columnar = _columnar(store, selection, start_ns, end_ns, zone, refused, fmt, progress)
    with scan_gc():
        try:
            n = _write(
                records, fmt, sink, zone, flush=speed is not None, atomic=atomic, columnar=columnar
            )
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # `replay | head`: the reader left; the caller exits quietly
            target = out if out is not None else "standard output"
            raise ReplayError(
                f"cannot write {target}: {exc.strerror or exc}; free space or choose another --out"
            ) from None
    result.records = n
    first_ns = start_ns if start_ns is not None else 0
    where = f" to {out}" if out is not None else ""
    note(f"{n:,} records in {span}{where}; times in {zone_label(zone, first_ns)}")
    skipped = store.skipped()
    if skipped:
        note(skipped)
    if refused.skipped:
        note(
            f"note: skipped {refused.skipped:,} stored records with values the schema "
            "refuses (written by an older recorder)"
        )
    if n == 0 and (start_ns is not None or end_ns is not None):
        note(_store_span(store, zone))
    if store.order.late:
        note(
            f"{store.order.late} records were written over "
            f"{DEFAULT_WINDOW_NS // 1_000_000_000} s after later-received ones and are emitted "
            "in write order"
        )
    return result


def _store_span(store: StoreReader, zone: ZoneInfo) -> str:
    """Where the store's records are, for a range that found none (wrong date or zone?)."""
    from shriven.wal.check import wal_stats

    st = wal_stats("ticks", store.data_dir / "ticks")
    if st.first_ns is None or st.last_ns is None:
        return f"{store.data_dir} holds no records yet"
    return (
        f"{store.data_dir} holds records from {format_ns(st.first_ns, zone)} to "
        f"{format_ns(st.last_ns, zone)} (times without an offset are in {zone.key})"
    )


def _columnar(
    store: StoreReader,
    selection: Selection,
    start_ns: int | None,
    end_ns: int | None,
    zone: ZoneInfo,
    refused: RefusedFilter,
    fmt: str,
    progress: IO[str] | None,
) -> Callable[[IO[bytes]], int] | None:
    """The column-at-a-time writer of the replay (replay.columnar_export), or None when it
    does not serve it: book snapshots asked for, or no pyarrow (the record path then says so)."""
    if selection.needs_lob:
        return None
    try:
        from shriven.replay.columnar_export import write_file
    except ImportError:
        return None
    line = None
    if progress is not None:
        line = ProgressLine(start_ns, end_ns, progress, lambda ns: format_ns(ns, zone))
    return lambda f: write_file(store, selection, start_ns, end_ns, zone, refused, f, fmt, line)


def _write(
    records: Iterator[Record],
    fmt: str,
    sink: Sink,
    zone: ZoneInfo,
    flush: bool,
    atomic: bool,
    columnar: Callable[[IO[bytes]], int] | None = None,
) -> int:
    if isinstance(sink, io.TextIOBase):
        n = _TEXT_WRITERS[fmt](records, sink, zone, flush)
        sink.flush()
        return n
    if not isinstance(sink, Path):
        if columnar is not None:
            return columnar(sink)  # type: ignore[arg-type]
        return _write_binary(records, fmt, sink, zone, flush)  # type: ignore[arg-type]
    # A file is written through a temporary file renamed over it when the export is complete,
    # so an interrupted or failed export never leaves a file that looks whole.
    with atomic_output(sink, 0o644) if atomic else open(sink, "wb") as f:
        if columnar is not None:
            return columnar(f)
        return _write_binary(records, fmt, f, zone, flush)


def _write_binary(
    records: Iterator[Record], fmt: str, f: IO[bytes], zone: ZoneInfo, flush: bool
) -> int:
    if fmt == "parquet":
        return export.write_parquet(records, f, zone)
    if fmt == "arrow":
        return export.write_arrow(records, f, zone)
    with export.text_view(f) as text:
        return _TEXT_WRITERS[fmt](records, text, zone, flush)


_TEXT_WRITERS = {"table": export.write_table, "jsonl": export.write_jsonl, "csv": export.write_csv}


@dataclass(slots=True)
class BookResult:
    """A book at an instant, the store key it was found under, and the notes to show."""

    book: BookAt
    key: str
    notes: list[str] = field(default_factory=list)
    # decimals of prices and quantities from the contract's tick and lot size (None: the venue's)
    places: tuple[int | None, int | None] = (None, None)


def replay_book(
    data_dir: Path,
    symbol: str,
    at_ns: int,
    zone: ZoneInfo,
    *,
    skip_damaged: bool = False,
    cache_dir: Path | Callable[[], Path] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> BookResult:
    """The book of ``symbol`` (Binance symbol, Kite trading symbol or token) at ``at_ns``: the
    nearest snapshot at or before it plus the recorded changes. Notes go to ``on_note`` as soon
    as they are known, and into the result. Raises NotRecordedError when nothing was recorded
    for it by then. ``cache_dir`` may be a function giving it, called only when the symbol is a
    Kite name to look up (the CLI's comes from the settings, slow to load for a cold command)."""
    instruments = None
    inst_note = ""
    text = symbol.strip()
    if not text.isdigit() and not text.startswith(("kite:", "binance:")):
        instruments, inst_note = instruments_for(
            cache_dir() if callable(cache_dir) else cache_dir, data_dir
        )
    key = resolve_book_key(text, instruments)
    store = StoreReader(data_dir, strict=not skip_damaged)
    with scan_gc():
        book = book_at(store, key, at_ns)
    notes = [line] if (line := store.skipped()) else []
    if notes and on_note is not None:
        on_note(notes[0])
    if book.snapshot is None and book.changes == 0:
        # Nothing at all to build from: an empty "book" would look like a real answer.
        recorded = store.book_keys()
        if key in recorded:
            hint = "its records start later"
        else:
            hint = closest_recorded(key.partition(":")[2], recorded, instruments)
        raise NotRecordedError(
            f"no book of {key} at or before {format_ns(at_ns, zone)} in "
            f"{data_dir}: nothing was recorded for it by then; {hint}; check --symbol "
            "(`shriven replay --kind status` shows what was recorded and when) and --at"
            + (f"; {inst_note}" if inst_note else "")
        )
    if contract := contract_note(data_dir, key):  # a futures contract named and scaled
        notes.append(contract)
        if on_note is not None:
            on_note(contract)
    return BookResult(book, key, notes, contract_places(data_dir, key))


@dataclass(slots=True)
class VerifyResult:
    """Every snapshot of a store compared with its rebuild, and the notes to show."""

    report: VerifyReport
    notes: list[str] = field(default_factory=list)


def verify_store(
    data_dir: Path,
    *,
    margin_ns: int = DEFAULT_MARGIN_NS,
    skip_damaged: bool = False,
    on_record: Callable[[int], None] | None = None,
) -> VerifyResult:
    """Rebuild every book snapshot of the store at ``data_dir`` from the one before it plus the
    recorded changes (``margin_ns``: how long a record may have waited in the daemon's queue)."""
    store = StoreReader(data_dir, strict=not skip_damaged)
    with scan_gc():
        report = verify_books(
            store.ticks.records(),
            store.snapshots(),
            store.restart_times(),
            margin_ns,
            on_record=on_record,
        )
    return VerifyResult(report, [line] if (line := store.skipped()) else [])


@dataclass(slots=True)
class IndexResult:
    """What ``index_store`` did: sidecars written and those already valid."""

    written: int
    valid: int


def index_store(data_dir: Path, *, rebuild: bool = False) -> IndexResult:
    """Write the columnar book index (``segment_N.books``) beside every sealed tick segment of
    the store at ``data_dir`` that lacks a valid one (all of them with ``rebuild``), so that
    ``replay_book`` reads a Binance book without decoding the other instruments."""
    store = StoreReader(data_dir)
    if not store.ticks.directory.is_dir():
        raise ReplayError(f"{data_dir} has no ticks/ directory: there is nothing to index")
    written, valid = write_sidecars(store.ticks.directory, rebuild=rebuild)
    return IndexResult(written, valid)

"""`shriven replay ...` (records of a time range, a book at an instant) and
`shriven wal verify-books`."""

from __future__ import annotations

import errno
import io
import itertools
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import typer

from shriven.cli.app import app, settings
from shriven.cli.wal import wal_app
from shriven.errors import NotRecordedError, ReplayError
from shriven.events import Record
from shriven.files import atomic_output
from shriven.replay import export
from shriven.replay.books import DEFAULT_MARGIN_NS, verify_books
from shriven.replay.features_view import render_book
from shriven.replay.gc_tuning import scan_gc
from shriven.replay.instruments import instruments_for
from shriven.replay.ordering import DEFAULT_WINDOW_NS, paced, with_progress
from shriven.replay.reconstruct import book_at, resolve_book_key
from shriven.replay.select import (
    RefusedFilter,
    Selection,
    parse_kinds,
    require_recorded,
    resolve_each,
)
from shriven.replay.store import StoreReader
from shriven.replay.times import format_ns, load_zone, parse_instant, zone_label

replay_app = typer.Typer(
    help=(
        "Replay recorded records received in [--start, --end), ordered by receive time then "
        "per-stream sequence; or show a book at an instant (`replay book`)."
    ),
    invoke_without_command=True,
)
app.add_typer(replay_app, name="replay")

_DATA_DIR_HELP = "Store to read (default: the configured pipeline data_dir)."
_TZ_HELP = "Zone for times without an offset and for output (default: SHRIVEN_MARKET_TZ)."
_SKIP_HELP = (
    "Read past damaged WAL frames instead of stopping at the first; one line on stderr says "
    "how many frames and bytes were skipped and where."
)


def _report_skipped(store: StoreReader, command: str) -> None:
    line = store.skipped()
    if line:
        typer.echo(f"{command}: {line}", err=True)


def _data_dir(value: Path | None) -> Path:
    return value if value is not None else Path(settings().pipeline.data_dir)


def _speed(text: str) -> float | None:
    if text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        speed = 0.0
    if not speed > 0:
        raise ReplayError(f"bad --speed {text!r}: use max, or a positive factor such as 1 or 10")
    return speed


@replay_app.callback()
def replay(
    ctx: typer.Context,
    start: str | None = typer.Option(
        None,
        "--start",
        metavar="TIME",
        help="Range start: [start, end) holds records received at or after it (ISO 8601; no "
        "offset = market zone).",
    ),
    end: str | None = typer.Option(
        None,
        "--end",
        metavar="TIME",
        help="Range end: [start, end) holds records received before it (ISO 8601; no offset = "
        "market zone).",
    ),
    symbol: list[str] = typer.Option(
        [],
        "--symbol",
        metavar="SYMBOL",
        help="Trading symbol, instrument token, spot name ('NIFTY 50': spot, futures and "
        "options) or Binance symbol. Repeatable.",
    ),
    venue: str | None = typer.Option(None, "--venue", metavar="VENUE", help="kite or binance."),
    kind: list[str] = typer.Option(
        [],
        "--kind",
        metavar="KIND",
        help="ticks, trades, depth, status, snapshots (repeatable or comma-separated; default "
        "all but snapshots).",
    ),
    fmt: str = typer.Option(
        "table", "--format", metavar="FORMAT", help="table, jsonl, csv or parquet."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        metavar="FILE",
        help="Write to FILE instead of stdout (never inside the store; complete or not at all).",
    ),
    force: bool = typer.Option(False, "--force", help="Replace --out FILE if it exists."),
    speed: str = typer.Option(
        "max",
        "--speed",
        metavar="SPEED",
        help="max, or a pace factor: 1 = as recorded, 10 = ten times faster.",
    ),
    data_dir: Path | None = typer.Option(None, "--data-dir", metavar="DIR", help=_DATA_DIR_HELP),
    tz: str | None = typer.Option(None, "--tz", metavar="ZONE", help=_TZ_HELP),
    progress: bool | None = typer.Option(
        None, "--progress/--no-progress", help="Progress on stderr (default: on with --out)."
    ),
    skip_damaged: bool = typer.Option(False, "--skip-damaged", help=_SKIP_HELP),
) -> None:
    """Replay recorded records of a time range, deterministically."""
    if ctx.invoked_subcommand is not None:
        return
    fmt = fmt.lower()
    if fmt not in export.FORMATS:
        raise ReplayError(f"unknown --format {fmt!r}: use one of {', '.join(export.FORMATS)}")
    if fmt == "parquet" and out is None:
        raise ReplayError("--format parquet writes a file: give --out FILE.parquet")
    zone = load_zone(tz or settings().market_tz)
    start_ns = parse_instant(start, zone) if start else None
    end_ns = parse_instant(end, zone) if end else None
    if start_ns is not None and end_ns is not None and end_ns <= start_ns:
        raise ReplayError("the range is empty: --end must be after --start")
    pace = _speed(speed)
    atomic = export.check_out(out, _data_dir(data_dir), force) if out is not None else False
    instruments, note = (
        instruments_for(settings().cache_dir, _data_dir(data_dir)) if symbol else (None, "")
    )
    wanted = resolve_each(symbol, instruments)
    keys = frozenset(k for _text, ks, _what in wanted for k in ks)
    described = [f"{text}: {what}" for text, _ks, what in wanted]
    if symbol and not keys:
        raise ReplayError(f"--symbol {', '.join(symbol)} selected no instrument")
    selection = Selection(
        parse_kinds(kind), venue.lower() if venue else None, keys, described, seen=set()
    )
    store = StoreReader(_data_dir(data_dir), strict=not skip_damaged)
    for line in described:
        typer.echo(f"replay: --symbol {line}", err=True)
    if note and any("not a Kite name" in d for d in described):
        typer.echo(f"replay: {note}", err=True)
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
    if pace is not None:
        records = paced(records, pace)
    show_progress = progress if progress is not None else out is not None
    if show_progress:
        records = with_progress(
            records, start_ns, end_ns, sys.stderr, lambda ns: format_ns(ns, zone)
        )
    with scan_gc():
        try:
            n = _write(records, fmt, out, zone, flush=pace is not None, atomic=atomic)
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # `replay | head`: the reader left; click exits quietly
            target = out if out is not None else "standard output"
            raise ReplayError(
                f"cannot write {target}: {exc.strerror or exc}; free space or choose another --out"
            ) from None
    first = start_ns if start_ns is not None else 0
    where = f" to {out}" if out is not None else ""
    typer.echo(
        f"replay: {n:,} records in {span}{where}; times in {zone_label(zone, first)}", err=True
    )
    _report_skipped(store, "replay")
    if refused.skipped:
        typer.echo(
            f"replay: note: skipped {refused.skipped:,} stored records with values the schema "
            "refuses (written by an older recorder)",
            err=True,
        )
    if n == 0 and (start_ns is not None or end_ns is not None):
        typer.echo(f"replay: {_store_span(store, zone)}", err=True)
    if store.order.late:
        typer.echo(
            f"replay: {store.order.late} records were written over "
            f"{DEFAULT_WINDOW_NS // 1_000_000_000} s after later-received ones and are emitted "
            "in write order",
            err=True,
        )


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


def _write(
    records: Iterator[Record],
    fmt: str,
    out: Path | None,
    zone: ZoneInfo,
    flush: bool,
    atomic: bool = True,
) -> int:
    if out is None:
        assert fmt != "parquet"
        n = _TEXT_WRITERS[fmt](records, sys.stdout, zone, flush)
        sys.stdout.flush()
        return n
    # A file is written through a temporary file renamed over it when the export is complete,
    # so an interrupted or failed export never leaves a file that looks whole.
    with atomic_output(out, 0o644) if atomic else open(out, "wb") as f:
        if fmt == "parquet":
            return export.write_parquet(records, f, zone)
        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        try:
            n = _TEXT_WRITERS[fmt](records, text, zone, flush)
            text.flush()
        finally:
            text.detach()
        return n


_TEXT_WRITERS = {"table": export.write_table, "jsonl": export.write_jsonl, "csv": export.write_csv}


@replay_app.command("book")
def book(
    symbol: str = typer.Option(
        ...,
        "--symbol",
        metavar="SYMBOL",
        help="One book: Binance symbol, Kite trading symbol or token.",
    ),
    at: str = typer.Option(
        ...,
        "--at",
        metavar="TIME",
        help="The instant (ISO 8601; no offset = market zone); changes at it count.",
    ),
    depth: int = typer.Option(10, "--depth", metavar="N", min=1, help="Levels per side to print."),
    data_dir: Path | None = typer.Option(None, "--data-dir", metavar="DIR", help=_DATA_DIR_HELP),
    tz: str | None = typer.Option(None, "--tz", metavar="ZONE", help=_TZ_HELP),
    skip_damaged: bool = typer.Option(False, "--skip-damaged", help=_SKIP_HELP),
) -> None:
    """The book at an instant: nearest snapshot at or before it plus the recorded changes."""
    zone = load_zone(tz or settings().market_tz)
    at_ns = parse_instant(at, zone)
    instruments = None
    note = ""
    text = symbol.strip()
    if not text.isdigit() and not text.startswith(("kite:", "binance:")):
        instruments, note = instruments_for(settings().cache_dir, _data_dir(data_dir))
    key = resolve_book_key(text, instruments)
    store = StoreReader(_data_dir(data_dir), strict=not skip_damaged)
    with scan_gc():
        result = book_at(store, key, at_ns)
    _report_skipped(store, "replay book")
    if result.snapshot is None and result.changes == 0:
        # Nothing at all to build from: an empty "book" would look like a real answer.
        raise NotRecordedError(
            f"no book of {key} at or before {format_ns(at_ns, zone)} in "
            f"{_data_dir(data_dir)}: nothing was recorded for it by then; check --symbol "
            "(`shriven replay --kind status` shows what was recorded and when) and --at"
            + (f"; {note}" if note else "")
        )
    typer.echo(render_book(result, depth, zone))


def _verify_progress() -> Callable[[int], None]:
    next_at = time.monotonic() + 1.0

    def report(n: int) -> None:
        nonlocal next_at
        if time.monotonic() >= next_at:
            typer.echo(f"\rverify-books: {n:,} records", err=True, nl=False)
            next_at = time.monotonic() + 1.0

    return report


@wal_app.command("verify-books")
def verify_books_command(
    path: Path = typer.Argument(
        ..., metavar="PATH", help="The store (data directory holding ticks/ and lob/)."
    ),
    margin: float = typer.Option(
        DEFAULT_MARGIN_NS / 1e9,
        "--margin",
        metavar="SECONDS",
        help="Seconds a record may have waited in the daemon's queue before being applied.",
    ),
    tz: str | None = typer.Option(None, "--tz", metavar="ZONE", help=_TZ_HELP),
    skip_damaged: bool = typer.Option(False, "--skip-damaged", help=_SKIP_HELP),
) -> None:
    """Rebuild every book snapshot from the one before it plus the recorded changes; exit 1 on
    any difference."""
    zone = load_zone(tz or settings().market_tz)
    store = StoreReader(path, strict=not skip_damaged)
    progress = _verify_progress() if sys.stderr.isatty() else None
    with scan_gc():
        report = verify_books(
            store.ticks.records(),
            store.snapshots(),
            store.restart_times(),
            int(margin * 1e9),
            on_record=progress,
        )
    if progress is not None:
        typer.echo("", err=True)
    _report_skipped(store, "verify-books")
    for d in report.differences:
        later = format_ns(d.later.recv_ns, zone)
        base = (
            f"the snapshot at {format_ns(d.earlier.recv_ns, zone)} (update {d.earlier.update_id})"
            if d.earlier is not None
            else "the daemon start"
        )
        typer.echo(
            f"DIFFERENT {d.key} snapshot at {later} (update {d.later.update_id}) vs rebuilt "
            f"from {base}: {d.reason}"
        )
    for stream, missing in sorted(report.seq_gaps.items()):
        typer.echo(
            f"note: {missing} sequence numbers missing in the {stream} stream (records lost "
            "before the WAL, or a feed with several counters)"
        )
    if report.rejected:
        typer.echo(
            f"note: skipped {report.rejected} stored records with values the schema refuses "
            "(written by an older recorder); the books were rebuilt without them"
        )
    typer.echo(
        f"{path}: {report.snapshots} snapshots of {len(report.books)} books, "
        f"{report.records:,} records; {report.pairs} rebuilt from the snapshot before, "
        f"{report.run_starts} from a daemon start, {report.first_seen} first snapshots; "
        f"{report.restarts} daemon starts; {len(report.differences)} differences"
    )
    if report.snapshots == 0:
        typer.echo("note: no book snapshots in lob/: nothing to compare")
    if not report.ok:
        raise typer.Exit(1)

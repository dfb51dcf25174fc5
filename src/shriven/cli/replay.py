"""`shriven replay ...` (records of a time range, a book at an instant) and
`shriven wal verify-books`."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import typer

from shriven.cli.app import app, settings
from shriven.cli.tree import ReplayGroup
from shriven.cli.wal import wal_app
from shriven.errors import ReplayError
from shriven.replay import DEFAULT_MARGIN_NS, format_ns, load_zone, parse_instant

# The commands import what they run (shriven.replay.api and the rooms under it) when they run:
# every command's start-up pays for the imports at the top of each CLI module.

replay_app = typer.Typer(
    help=(
        "Replay recorded records received in [--start, --end), ordered by receive time then "
        "per-stream sequence; or show a book at an instant (`replay book`)."
    ),
    invoke_without_command=True,
    cls=ReplayGroup,
)
app.add_typer(replay_app, name="replay")

_DATA_DIR_HELP = "Store to read (default: the configured pipeline data_dir)."
_TZ_HELP = "Zone for times without an offset and for output (default: SHRIVEN_MARKET_TZ)."
_SKIP_HELP = (
    "Read past damaged WAL frames instead of stopping at the first; one line on stderr says "
    "how many frames and bytes were skipped and where."
)


def _note(command: str) -> Callable[[str], None]:
    return lambda line: typer.echo(f"{command}: {line}", err=True)


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
    venue: str | None = typer.Option(
        None, "--venue", metavar="VENUE", help="kite, binance, binance-usdm or binance-coinm."
    ),
    kind: list[str] = typer.Option(
        [],
        "--kind",
        metavar="KIND",
        help="ticks, trades, depth, status, snapshots, tickers, marks, liquidations, "
        "open_interest (repeatable or comma-separated; default all but snapshots).",
    ),
    fmt: str = typer.Option(
        "table", "--format", metavar="FORMAT", help="table, jsonl, csv, parquet or arrow."
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
    from shriven.replay import replay_range

    zone = load_zone(tz or settings().market_tz)
    show_progress = progress if progress is not None else out is not None
    replay_range(
        _data_dir(data_dir),
        out if out is not None else sys.stdout,
        zone,
        start_ns=parse_instant(start, zone) if start else None,
        end_ns=parse_instant(end, zone) if end else None,
        symbols=symbol,
        venue=venue,
        kinds=kind,
        fmt=fmt,
        speed=_speed(speed),
        progress=sys.stderr if show_progress else None,
        skip_damaged=skip_damaged,
        cache_dir=Path(settings().cache_dir) if symbol else None,
        force=force,
        on_note=_note("replay"),
    )


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
    from shriven.replay import render_book, replay_book

    zone = load_zone(tz or settings().market_tz)
    result = replay_book(
        _data_dir(data_dir),
        symbol,
        parse_instant(at, zone),
        zone,
        skip_damaged=skip_damaged,
        cache_dir=lambda: Path(settings().cache_dir),
        on_note=_note("replay book"),
    )
    typer.echo(render_book(result.book, depth, zone, result.places))


@replay_app.command("index")
def index(
    data_dir: Path | None = typer.Option(None, "--data-dir", metavar="DIR", help=_DATA_DIR_HELP),
    rebuild: bool = typer.Option(
        False, "--rebuild", help="Rewrite every sidecar, also those still valid."
    ),
) -> None:
    """Write the columnar book index beside each sealed tick segment (for `replay book`)."""
    from shriven.replay import index_store

    result = index_store(_data_dir(data_dir), rebuild=rebuild)
    typer.echo(
        f"replay index: wrote {result.written} book index file(s); {result.valid} already valid"
    )


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
    from shriven.replay import verify_store

    zone = load_zone(tz or settings().market_tz)
    progress = _verify_progress() if sys.stderr.isatty() else None
    result = verify_store(
        path, margin_ns=int(margin * 1e9), skip_damaged=skip_damaged, on_record=progress
    )
    report = result.report
    if progress is not None:
        typer.echo("", err=True)
    for line in result.notes:
        typer.echo(f"verify-books: {line}", err=True)
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

"""`shriven replay chain`, `shriven replay arb`, `shriven replay features`: options and book
analytics read from a store."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from shriven.cli.app import settings
from shriven.cli.replay import _DATA_DIR_HELP, _SKIP_HELP, _TZ_HELP, _data_dir, _note, replay_app
from shriven.replay import (
    DEFAULT_LOOKBACK_NS,
    load_zone,
    parse_every,
    parse_instant,
    replay_chain,
)

_AT_HELP = "The instant (ISO 8601; no offset = market zone)."
_START_HELP = "Series start (ISO 8601; no offset = market zone); with --end and --every."
_END_HELP = "Series end (not included)."
_EVERY_HELP = "Series interval: 500ms, 1s, 1m, 5m."
_RATE_HELP = "Yearly discount rate as a decimal (default: SHRIVEN_ANALYTICS_RATE, 0.065)."
_LOOKBACK_HELP = "Seconds a quote stays current: an older one shows as 'no quote in range'."


def _instant(text: str | None, zone) -> int | None:  # type: ignore[no-untyped-def]
    return parse_instant(text, zone) if text else None


@replay_app.command("chain")
def chain(
    underlying: str = typer.Argument(..., metavar="UNDERLYING", help="Index or stock: 'NIFTY 50'."),
    at: str | None = typer.Option(None, "--at", metavar="TIME", help=_AT_HELP),
    start: str | None = typer.Option(None, "--start", metavar="TIME", help=_START_HELP),
    end: str | None = typer.Option(None, "--end", metavar="TIME", help=_END_HELP),
    every: str | None = typer.Option(None, "--every", metavar="INTERVAL", help=_EVERY_HELP),
    expiry: str = typer.Option(
        "current", "--expiry", metavar="EXPIRY", help="current, next, all or a date (2026-12-29)."
    ),
    fmt: str = typer.Option(
        "table", "--format", metavar="FORMAT", help="table, jsonl, csv or parquet."
    ),
    out: Path | None = typer.Option(
        None, "--out", metavar="FILE", help="Write to FILE instead of stdout."
    ),
    plot: Path | None = typer.Option(
        None, "--plot", metavar="FILE.png", help="Draw the smile and term structure to FILE.png."
    ),
    force: bool = typer.Option(False, "--force", help="Replace --out or --plot FILE if it exists."),
    rate: float | None = typer.Option(None, "--rate", metavar="RATE", help=_RATE_HELP),
    lookback: float = typer.Option(
        DEFAULT_LOOKBACK_NS / 1e9, "--lookback", metavar="SECONDS", help=_LOOKBACK_HELP
    ),
    data_dir: Path | None = typer.Option(None, "--data-dir", metavar="DIR", help=_DATA_DIR_HELP),
    tz: str | None = typer.Option(None, "--tz", metavar="ZONE", help=_TZ_HELP),
    skip_damaged: bool = typer.Option(False, "--skip-damaged", help=_SKIP_HELP),
) -> None:
    """The option chain at an instant (or on a clock grid) with IV and Greeks."""
    s = settings()
    zone = load_zone(tz or s.market_tz)
    result = replay_chain(
        _data_dir(data_dir),
        underlying,
        out if out is not None else sys.stdout,
        zone,
        at_ns=_instant(at, zone),
        start_ns=_instant(start, zone),
        end_ns=_instant(end, zone),
        every_ns=parse_every(every) if every else None,
        expiry=expiry,
        rate=s.analytics_rate if rate is None else rate,
        lookback_ns=int(lookback * 1e9),
        fmt=fmt,
        plot=plot,
        cache_dir=Path(s.cache_dir),
        skip_damaged=skip_damaged,
        force=force,
        on_note=_note("replay chain"),
    )
    if out is not None:
        typer.echo(
            f"replay chain: {result.legs:,} rows of {result.snapshots:,} instants to {out}",
            err=True,
        )
    if result.plot is not None:
        typer.echo(
            f"replay chain: plot {result.plot.width}x{result.plot.height} to {result.plot.path}",
            err=True,
        )

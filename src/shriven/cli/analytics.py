"""`shriven replay chain`, `shriven replay arb`, `shriven replay features`: options and book
analytics read from a store."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from shriven.cli.app import settings
from shriven.cli.replay import _DATA_DIR_HELP, _SKIP_HELP, _TZ_HELP, _data_dir, _note, replay_app
from shriven.errors import ReplayError
from shriven.replay import DEFAULT_LOOKBACK_NS, load_zone, parse_instant

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
    from shriven.replay import parse_every, replay_chain

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


def _required(text: str | None, name: str, zone) -> int:  # type: ignore[no-untyped-def]
    if not text:
        raise ReplayError(f"give {name} TIME (ISO 8601; no offset = market zone)")
    return parse_instant(text, zone)


@replay_app.command("arb")
def arb(
    start: str | None = typer.Option(None, "--start", metavar="TIME", help="Range start."),
    end: str | None = typer.Option(None, "--end", metavar="TIME", help="Range end (not included)."),
    symbol: list[str] = typer.Option(
        [],
        "--symbol",
        metavar="UNDERLYING",
        help="'NIFTY 50', or a Binance spot or perpetual symbol (repeatable; default: every "
        "underlying with options and every perpetual the store recorded).",
    ),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        metavar="RUPEES",
        help="Report deviations above this after spreads (default: "
        "SHRIVEN_ANALYTICS_PARITY_THRESHOLD, 1.0).",
    ),
    basis_threshold: float | None = typer.Option(
        None,
        "--basis-threshold",
        metavar="BPS",
        help="Report Binance spot vs perpetual deviations above this after both spreads "
        "(default: SHRIVEN_ANALYTICS_BASIS_THRESHOLD_BPS, 10).",
    ),
    fmt: str = typer.Option("table", "--format", metavar="FORMAT", help="table, jsonl or csv."),
    out: Path | None = typer.Option(None, "--out", metavar="FILE", help="Write to FILE."),
    force: bool = typer.Option(False, "--force", help="Replace --out FILE if it exists."),
    rate: float | None = typer.Option(None, "--rate", metavar="RATE", help=_RATE_HELP),
    data_dir: Path | None = typer.Option(None, "--data-dir", metavar="DIR", help=_DATA_DIR_HELP),
    tz: str | None = typer.Option(None, "--tz", metavar="ZONE", help=_TZ_HELP),
    skip_damaged: bool = typer.Option(False, "--skip-damaged", help=_SKIP_HELP),
) -> None:
    """Put-call parity violations against the future, and Binance spot vs perpetual basis
    deviations with funding, after spreads, in a time range."""
    from shriven.replay import replay_arb

    s = settings()
    zone = load_zone(tz or s.market_tz)
    replay_arb(
        _data_dir(data_dir),
        out if out is not None else sys.stdout,
        zone,
        start_ns=_instant(start, zone),
        end_ns=_instant(end, zone),
        symbols=symbol,
        threshold=s.analytics_parity_threshold if threshold is None else threshold,
        basis_threshold=(
            s.analytics_basis_threshold_bps if basis_threshold is None else basis_threshold
        ),
        rate=s.analytics_rate if rate is None else rate,
        fmt=fmt,
        cache_dir=Path(s.cache_dir),
        skip_damaged=skip_damaged,
        force=force,
        on_note=_note("replay arb"),
    )


@replay_app.command("features")
def features(
    symbol: str = typer.Option(
        ..., "--symbol", metavar="SYMBOL", help="One book: Binance symbol, Kite symbol or token."
    ),
    start: str | None = typer.Option(None, "--start", metavar="TIME", help=_START_HELP),
    end: str | None = typer.Option(None, "--end", metavar="TIME", help=_END_HELP),
    every: str = typer.Option("1s", "--every", metavar="INTERVAL", help=_EVERY_HELP),
    depth: int = typer.Option(5, "--depth", metavar="N", help="Levels for the top-N imbalance."),
    window: int = typer.Option(
        60, "--window", metavar="N", help="Returns in the realised volatility."
    ),
    fmt: str = typer.Option("parquet", "--format", metavar="FORMAT", help="parquet, jsonl or csv."),
    out: Path | None = typer.Option(None, "--out", metavar="FILE", help="Write to FILE."),
    force: bool = typer.Option(False, "--force", help="Replace --out FILE if it exists."),
    data_dir: Path | None = typer.Option(None, "--data-dir", metavar="DIR", help=_DATA_DIR_HELP),
    tz: str | None = typer.Option(None, "--tz", metavar="ZONE", help=_TZ_HELP),
    skip_damaged: bool = typer.Option(False, "--skip-damaged", help=_SKIP_HELP),
) -> None:
    """Book features of one instrument on a clock grid (mid, spread, microprice, imbalances,
    order-flow imbalance, log return, realised volatility)."""
    from shriven.replay import parse_every, replay_features

    s = settings()
    zone = load_zone(tz or s.market_tz)
    result = replay_features(
        _data_dir(data_dir),
        symbol,
        out if out is not None else sys.stdout,
        zone,
        start_ns=_required(start, "--start", zone),
        end_ns=_required(end, "--end", zone),
        every_ns=parse_every(every),
        depth=depth,
        window=window,
        fmt=fmt,
        cache_dir=Path(s.cache_dir),
        skip_damaged=skip_damaged,
        force=force,
        on_note=_note("replay features"),
    )
    if out is not None:
        typer.echo(f"replay features: {result.rows:,} rows of {result.key} to {out}", err=True)

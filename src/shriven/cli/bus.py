"""`shriven sink` and `shriven tail`: consumers of what `run --publish` puts on NATS JetStream."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import typer

from shriven.cli.app import app, settings

_URL_HELP = "NATS server URL(s), comma-separated (default SHRIVEN_NATS_URLS)."


@app.command("sink")
def sink_command(
    urls: list[str] | None = typer.Argument(None, metavar="nats://HOST:PORT", help=_URL_HELP),
    data_dir: Path = typer.Option(
        ...,
        "--data-dir",
        metavar="ARCHIVE",
        help="The archive: one shriven store per recorder, ARCHIVE/<recorder id>/.",
    ),
    subjects: str | None = typer.Option(
        None,
        "--subjects",
        metavar="FILTER",
        help="Only these subjects, e.g. 'shriven.binance.>' (default: the whole stream).",
    ),
    durable: str = typer.Option(
        "shriven-sink",
        "--durable",
        metavar="NAME",
        help="The durable consumer's name: a restarted sink with the same name resumes.",
    ),
    duration: float | None = typer.Option(
        None, "--duration", metavar="SECONDS", help="Stop cleanly after this many seconds."
    ),
) -> None:
    """Archive what the bus carries: a durable pull consumer writing shriven stores,
    acknowledging only what is durable, each record once (see docs/bus.md)."""
    if duration is not None and duration <= 0:
        raise typer.BadParameter("must be more than 0", param_hint="--duration")
    from shriven.app.bus import sink, split_urls

    stats = sink(
        settings(),
        split_urls(urls),
        data_dir,
        subjects=subjects,
        durable=durable,
        duration=duration,
    )
    print(
        f"sink: {stats.stored} records stored, {stats.duplicates} duplicates dropped, "
        f"{stats.refused} messages refused, {stats.snapshots} book snapshots stored",
        file=sys.stderr,
    )


@app.command("tail")
def tail_command(
    urls: list[str] | None = typer.Argument(None, metavar="nats://HOST:PORT", help=_URL_HELP),
    symbol: str | None = typer.Option(
        None,
        "--symbol",
        metavar="X",
        help="Only this instrument as in the subject: a Binance symbol (BTCUSDT) or a Kite "
        "instrument token (256265).",
    ),
    kind: str | None = typer.Option(
        None,
        "--type",
        metavar="T",
        help="Only this record type: kite_tick, binance_trade, binance_depth, "
        "binance_depth_snapshot or status.",
    ),
    count: int | None = typer.Option(
        None, "--count", min=1, metavar="N", help="Stop after N records."
    ),
    duration: float | None = typer.Option(
        None, "--duration", metavar="SECONDS", help="Stop after this many seconds."
    ),
    tz: str | None = typer.Option(
        None, "--tz", metavar="ZONE", help="Show times in this zone (default: the market zone)."
    ),
) -> None:
    """Print live records from the bus as they arrive (replay's table format), for people."""
    from shriven.app.bus import RECORD_TYPES, split_urls, tail
    from shriven.replay import load_zone

    if kind is not None and kind not in RECORD_TYPES:
        raise typer.BadParameter(f"use one of {', '.join(RECORD_TYPES)}", param_hint="--type")
    with contextlib.suppress(KeyboardInterrupt):
        tail(
            settings(),
            split_urls(urls),
            sys.stdout,
            load_zone(tz or settings().market_tz),
            symbol=symbol,
            kind=kind,
            count=count,
            duration=duration,
        )

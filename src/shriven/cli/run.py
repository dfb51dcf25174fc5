"""`shriven run`: record market data until stopped (or for --duration seconds)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from shriven.cli.app import app, settings


def _split(values: list[str] | None) -> list[str]:
    return [n.strip() for v in values or [] for n in v.split(",") if n.strip()]


@app.command("run")
def run_command(
    symbols: list[str] | None = typer.Option(
        None,
        "--symbols",
        metavar="A,B",
        help='Repeat or comma-separate: Kite spot indices ("NIFTY 50,NIFTY BANK") with --venue '
        "kite, Binance pairs (BTCUSDT,ETHUSDT) with --venue binance, contracts or roll aliases "
        "(BTCUSDT, BTCUSD_PERP, BTCUSD_CURRENT_QUARTER) with --venue binance-usdm or "
        "binance-coinm. Default: from config.",
    ),
    strike_range: int | None = typer.Option(
        None,
        "--strike-range",
        min=0,
        max=200,
        metavar="N",
        help="Option strikes each side of ATM (default SHRIVEN_PIPELINE__OPTION_STRIKE_RANGE, 10).",
    ),
    venue: str = typer.Option(
        "all",
        "--venue",
        help="kite, binance (spot), binance-usdm, binance-coinm (futures), several "
        "comma-separated, or all (Kite, plus each Binance venue whose symbols are set).",
        metavar="VENUE",
    ),
    sim: bool = typer.Option(
        False,
        "--sim",
        help="Record from the built-in loopback Kite and Binance simulators (no credentials, no "
        "internet) into data/sim unless --data-dir is given.",
    ),
    duration: float | None = typer.Option(
        None, "--duration", help="Stop cleanly after this many seconds.", metavar="SECONDS"
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No status line every few seconds."),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Print what would be recorded (the Kite plan and ticker connections, the Binance "
        "stream connections, as --venue says) and exit without connecting.",
    ),
    spot: list[str] | None = typer.Option(
        None,
        "--spot",
        metavar="SYMBOL=PRICE",
        help='Spot price per symbol instead of asking Kite, e.g. --spot "NIFTY 50=25000" '
        "(repeatable).",
    ),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        metavar="DIR",
        help="Record here instead of SHRIVEN_PIPELINE__DATA_DIR.",
    ),
    sim_rate: float | None = typer.Option(
        None,
        "--sim-rate",
        metavar="N",
        help="With --sim: Kite simulator ticks per second, more than 0 (default 2000).",
    ),
    health_port: int | None = typer.Option(
        None,
        "--health-port",
        metavar="PORT",
        help="Port for /health and /metrics on 127.0.0.1 (default SHRIVEN_HEALTH_PORT; "
        "0 picks a free one, -1 turns the server off).",
    ),
    serve_port: int | None = typer.Option(
        None,
        "--serve",
        min=0,
        max=65535,
        metavar="PORT",
        help="Also serve the live data (and this store's history) on PORT: Kite ticker and "
        "Binance stream protocols, the /v1 query API (0 picks a free port).",
    ),
    publish: list[str] | None = typer.Option(
        None,
        "--publish",
        metavar="nats://HOST:PORT",
        help="Also publish every record, once durable, to this NATS JetStream (repeat or "
        "comma-separate for a cluster; settings SHRIVEN_NATS_*, docs/bus.md). Recording never "
        "waits for it.",
    ),
    force_login: bool = typer.Option(
        False,
        "--force-login",
        help="Log in to Kite even though Zerodha refused these credentials less than "
        "SHRIVEN_KITE_LOGIN_RETRY_SECS ago (each refused attempt risks locking the account).",
    ),
) -> None:
    """Record market data to the WAL, keep order books and write book snapshots.

    Stops on Ctrl-C or SIGTERM after draining the queue, a final snapshot and an fsync; a
    second Ctrl-C exits at once (the WAL recovers on the next start)."""
    from shriven.app.startup import VENUE_NAMES

    names = [v.strip() for v in venue.split(",") if v.strip()]
    if venue != "all" and (not names or any(v not in VENUE_NAMES for v in names)):
        raise typer.BadParameter(
            "use kite, binance or all (or binance-usdm, binance-coinm; several comma-separated)",
            param_hint="--venue",
        )
    if duration is not None and duration <= 0:
        raise typer.BadParameter("must be more than 0", param_hint="--duration")
    if sim_rate is not None and not sim_rate > 0:
        raise typer.BadParameter("must be more than 0 ticks per second", param_hint="--sim-rate")
    if health_port is not None and not -1 <= health_port <= 65535:
        raise typer.BadParameter(
            f"{health_port} is not a port: use 1-65535, 0 for a free one or -1 for no server",
            param_hint="--health-port",
        )
    from shriven.cli.kite_commands import parse_spot_overrides

    spots = parse_spot_overrides(spot or [])
    # Imported here so other commands start without loading the recorder.
    from shriven.app.startup import RunOptions, run

    options = RunOptions(
        venue=venue,  # type: ignore[arg-type]
        symbols=_split(symbols),
        strike_range=strike_range,
        sim=sim,
        duration=duration,
        quiet=quiet,
        data_dir=data_dir,
        health_port=health_port,
        sim_rate=sim_rate,
        spots=spots,
        serve_port=serve_port,
        publish=_split(publish),
    )
    if dry_run:
        if sim:
            raise typer.BadParameter(
                "--dry-run plans against the real venues; drop --sim (or run --sim --duration N)",
                param_hint="--dry-run",
            )
        from shriven.app.startup import dry_run as dry_run_report
        from shriven.cli.kite_commands import ProgressPrinter

        progress = ProgressPrinter()
        try:
            report = dry_run_report(
                settings(),
                options,
                warn=lambda line: print(f"warning: {line}", file=sys.stderr, flush=True),
                progress=progress,
            )
        finally:
            progress.close()
        print(report)
        return
    s = settings()
    if force_login:
        s = s.model_copy(update={"kite_force_login": True})
    code = run(s, options)
    if code:
        raise typer.Exit(code)

"""`shriven run`: for now only `--dry-run`, which prints the Kite plan and its connections.
The daemon itself replaces this module."""

from __future__ import annotations

import typer

from shriven.cli.app import app, settings
from shriven.cli.kite import dry_run_report, parse_spot_overrides
from shriven.errors import ShrivenError


@app.command("run")
def run(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print what would be recorded and exit without connecting."
    ),
    symbols: list[str] | None = typer.Option(
        None, "--symbols", help='Kite spot indices (repeat or comma-separate), e.g. "NIFTY 50".'
    ),
    strike_range: int | None = typer.Option(
        None, "--strike-range", min=0, max=200, help="Strikes each side of ATM."
    ),
    spot: list[str] | None = typer.Option(
        None, "--spot", help='Spot price per symbol, e.g. --spot "NIFTY 50=25000" (repeatable).'
    ),
) -> None:
    """Record market data (only --dry-run is available in this build)."""
    if not dry_run:
        raise ShrivenError(
            "the daemon is not built yet: only `shriven run --dry-run` works in this build"
        )
    names = [n.strip() for v in symbols or [] for n in v.split(",") if n.strip()]
    print(
        dry_run_report(
            settings(),
            symbols=names or None,
            strike_range=strike_range,
            spots=parse_spot_overrides(spot or []),
        )
    )

"""Kite commands: `shriven instruments fetch`, `shriven show-subscriptions`, and the --spot
parser `shriven run` shares. The plans and their text come from :mod:`shriven.app.kite_plans`."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING

import typer

from shriven.cli.app import app, settings
from shriven.cli.tree import InstrumentsGroup
from shriven.errors import UniverseError

if TYPE_CHECKING:
    from shriven.config import Settings
    from shriven.universe import InstrumentTable


def _plans() -> ModuleType:
    """shriven.app.kite_plans, imported when a Kite command runs: it imports kiteconnect and
    twisted, 2.0 of the 2.4 s `import shriven.cli` took under -X importtime (shared machine),
    which every cold `shriven replay book` paid."""
    from shriven.app import kite_plans

    return kite_plans


instruments_app = typer.Typer(
    help="The Kite instrument dump and its cache.", no_args_is_help=True, cls=InstrumentsGroup
)
app.add_typer(instruments_app, name="instruments")


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class ProgressPrinter:
    """Download progress on stderr: rewritten in place on a terminal, every 5 MB otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.shown = False
        self._last = 0.0
        self._mb = 0

    def __call__(self, done: int, total: int | None) -> None:
        mb = done / 1e6
        if self.tty:
            now = time.monotonic()
            if now - self._last >= 0.1:
                self._last = now
                self.shown = True
                of = f" of {total / 1e6:.1f}" if total else ""
                print(f"\rdownloading instruments: {mb:.1f}{of} MB", end="", file=sys.stderr)
        elif int(mb) >= self._mb + 5:
            self._mb = int(mb)
            _err(f"downloading instruments: {mb:.0f} MB")

    def close(self) -> None:
        if self.shown:
            print(file=sys.stderr, flush=True)


def load_table(s: Settings, *, force: bool = False) -> InstrumentTable:
    """The instrument table for commands: the fresh cache, else a fetch (with progress)."""
    progress = ProgressPrinter()
    try:
        return _plans().load_table(s, force=force, progress=progress)
    finally:
        progress.close()


@instruments_app.command("fetch")
def instruments_fetch(
    force: bool = typer.Option(False, "--force", help="Fetch even when the cache is fresh."),
) -> None:
    """Download the Kite instrument dump into the cache (fresh after 08:00 IST each day)."""
    s = settings()
    fresh = None if force else _plans().fresh_instrument_cache(s)
    if fresh is not None:
        print(
            f"instrument cache is fresh: {fresh.rows} rows fetched {fresh.fetched_at} "
            f"({_plans().instruments_path(s)}); use --force to fetch again"
        )
        return
    started = time.monotonic()
    progress = ProgressPrinter()
    try:
        meta = _plans().fetch_instrument_dump(s, progress=progress)
    finally:
        progress.close()
    print(
        f"fetched {meta.rows} instruments from {meta.source} in "
        f"{time.monotonic() - started:.1f} s -> {_plans().instruments_path(s)}"
    )


# ---------------------------------------------------------------- plans


@app.command("show-subscriptions")
def show_subscriptions(
    symbol: str = typer.Argument(
        ...,
        help='Spot index or stock as Kite lists it, e.g. "NIFTY 50" or "BSE:RELIANCE".',
        metavar="SYMBOL",
    ),
    spot: float | None = typer.Option(
        None,
        "--spot",
        help="Spot price (default: Kite LTP, else the last recorded tick).",
        metavar="PRICE",
    ),
    strike_range: int | None = typer.Option(
        None,
        "--strike-range",
        min=0,
        max=200,
        help="Listed strikes each side of ATM (default SHRIVEN_PIPELINE__OPTION_STRIKE_RANGE).",
        metavar="N",
    ),
    expiry: str | None = typer.Option(
        None,
        "--expiry",
        help="Option expiry: nearest, next or monthly (default SHRIVEN_PIPELINE__OPTION_EXPIRY).",
        metavar="WHICH",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """Show the instruments shriven would record for one spot index."""
    from shriven.config import deprecation_warnings
    from shriven.universe import EXPIRY_CHOICES

    if expiry is not None and expiry not in EXPIRY_CHOICES:
        raise UniverseError(f"unknown --expiry {expiry!r}: use nearest, next or monthly")
    s = settings()
    for line in deprecation_warnings(s.pipeline):
        _err(f"warning: {line}")
    table = load_table(s)
    plan, source = _plans().plan_for(
        s, table, symbol, spot=spot, strike_range=strike_range, expiry=expiry
    )
    if as_json:
        print(json.dumps({**plan.to_dict(), "spot_source": source}, indent=2))
    else:
        print(_plans().render_plan(plan, source))


# ---------------------------------------------------------------- run --dry-run


def parse_spot_overrides(values: Sequence[str]) -> dict[str, float]:
    """``["NIFTY 50=25000", ...]`` -> ``{"NIFTY 50": 25000.0}``."""
    out: dict[str, float] = {}
    for v in values:
        name, sep, price = v.rpartition("=")
        try:
            value = float(price)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise UniverseError(f"bad --spot {v!r}: write SYMBOL=PRICE, e.g. 'NIFTY 50=25000'")
        out[name.strip().upper()] = value
    return out

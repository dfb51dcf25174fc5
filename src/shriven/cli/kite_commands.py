"""Kite commands: `shriven instruments fetch`, `shriven show-subscriptions`, and the plan that
`shriven run --dry-run` prints (:func:`dry_run_report`)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import typer

from shriven.cli.app import app, settings
from shriven.config import Settings, deprecation_warnings
from shriven.errors import UniverseError
from shriven.feeds.kite.auth import KiteAuth, has_credentials
from shriven.feeds.kite.instruments import (
    cache_paths,
    fetch_instruments,
    is_fresh,
    load_instruments,
    read_metadata,
)
from shriven.feeds.kite.spot import resolve_spot_price
from shriven.universe import (
    EXPIRY_CHOICES,
    InstrumentTable,
    SubscriptionPlan,
    build_plan,
    qualified_symbol,
    split_connections,
)
from shriven.universe.plan import KITE_MAX_CONNECTIONS, KITE_MAX_PER_CONNECTION

instruments_app = typer.Typer(help="The Kite instrument dump and its cache.", no_args_is_help=True)
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


def _authorization(s: Settings) -> str | None:
    """The Authorization header for the dump when credentials are set (logging in if no cached
    token is valid); None without credentials, the dump is then fetched anonymously."""
    if not has_credentials(s):
        return None
    return KiteAuth.from_settings(s).session().authorization


def load_table(s: Settings, *, force: bool = False) -> InstrumentTable:
    """The instrument table for commands: the fresh cache, else a fetch (with progress)."""
    progress = ProgressPrinter()
    try:
        rows, _ = load_instruments(
            s.cache_dir,
            s.kite_api_root,
            force=force,
            authorization=lambda: _authorization(s),
            progress=progress,
        )
    finally:
        progress.close()
    return InstrumentTable(rows)


@instruments_app.command("fetch")
def instruments_fetch(
    force: bool = typer.Option(False, "--force", help="Fetch even when the cache is fresh."),
) -> None:
    """Download the Kite instrument dump into the cache (fresh after 08:00 IST each day)."""
    s = settings()
    data_path, _ = cache_paths(s.cache_dir)
    meta = read_metadata(s.cache_dir)
    if not force and meta is not None and is_fresh(meta, datetime.now(UTC), s.kite_api_root):
        print(
            f"instrument cache is fresh: {meta.rows} rows fetched {meta.fetched_at} "
            f"({data_path}); use --force to fetch again"
        )
        return
    started = time.monotonic()
    progress = ProgressPrinter()
    try:
        _, meta = fetch_instruments(
            s.cache_dir,
            s.kite_api_root,
            authorization=_authorization(s),
            progress=progress,
        )
    finally:
        progress.close()
    print(
        f"fetched {meta.rows} instruments from {meta.source} in "
        f"{time.monotonic() - started:.1f} s -> {data_path}"
    )


# ---------------------------------------------------------------- plans


def plan_for(
    s: Settings,
    table: InstrumentTable,
    symbol: str,
    *,
    spot: float | None = None,
    strike_range: int | None = None,
    expiry: str | None = None,
    spot_hint: str = "--spot PRICE",
) -> tuple[SubscriptionPlan, str]:
    """Build the plan for ``symbol``; returns it and where the spot price came from."""
    spot_row = table.resolve_spot(symbol)
    source = "--spot"
    if spot is None:
        spot, source = resolve_spot_price(s, spot_row, spot_hint.format(symbol=symbol))
    plan = build_plan(
        table,
        qualified_symbol(spot_row),
        spot,
        strike_range=s.pipeline.option_strike_range if strike_range is None else strike_range,
        expiry=expiry or s.pipeline.option_expiry,
        mode=s.kite_ticker_mode,
        class_modes=s.kite_ticker_class_modes,
    )
    return plan, source


def render_plan(plan: SubscriptionPlan, source: str = "") -> str:
    chain = (
        [
            f"  ATM {plan.atm_strike:g} (the listed strike nearest spot), option expiry "
            f"{plan.option_expiry} ({plan.expiry_choice})",
            f"  +-{plan.strike_range} listed strikes: {plan.strikes_below} below, "
            f"{plan.strikes_above} above (gap near the money {plan.strike_interval:g})",
        ]
        if plan.option_expiry
        else ["  no options"]
    )
    lines = [
        f"{plan.spot.exchange}:{plan.spot_symbol} (underlying {plan.underlying}): spot "
        f"{plan.spot_price:,.2f}" + (f" from {source}" if source else ""),
        *chain,
        "  ticker modes: " + ", ".join(f"{c} {m}" for c, m in plan.modes_by_class.items()),
        *(f"  warning: {w}" for w in plan.warnings),
        "",
        f"  {'kind':<5} {'token':>9}  {'tradingsymbol':<22} {'expiry':<10}",
        f"  {'SPOT':<5} {plan.spot.instrument_token:>9}  {plan.spot.tradingsymbol:<22} {'-':<10}",
    ]
    for f in plan.futures:
        lines.append(
            f"  {'FUT':<5} {f.instrument_token:>9}  {f.tradingsymbol:<22} {f.expiry!s:<10}"
        )
    calls = {round(c.strike * 100): c for c in plan.calls}
    puts = {round(p.strike * 100): p for p in plan.puts}
    if plan.option_expiry:
        lines += [
            "",
            f"  {'strike':>9}  {'CE token':>9} {'CE tradingsymbol':<22} "
            f"{'PE token':>9} {'PE tradingsymbol':<22}",
        ]
    for key in sorted(set(calls) | set(puts)):
        ce, pe = calls.get(key), puts.get(key)
        mark = "*" if key == round(plan.atm_strike * 100) else " "
        lines.append(
            f"{mark} {key / 100:>9g}  "
            f"{ce.instrument_token if ce else '-':>9} {ce.tradingsymbol if ce else '-':<22} "
            f"{pe.instrument_token if pe else '-':>9} {pe.tradingsymbol if pe else '-':<22}"
        )
    lines.append("")
    missing = (
        f"; call or put not listed at: {', '.join(f'{m:g}' for m in plan.missing_strikes)}"
        if plan.missing_strikes
        else ""
    )
    lines.append(
        f"  {len(plan)} instruments: 1 spot, {len(plan.futures)} futures, {len(plan.calls)} "
        f"calls, {len(plan.puts)} puts; expiries {', '.join(map(str, plan.expiries))}{missing}"
    )
    return "\n".join(line.rstrip() for line in lines)


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
    if expiry is not None and expiry not in EXPIRY_CHOICES:
        raise UniverseError(f"unknown --expiry {expiry!r}: use nearest, next or monthly")
    s = settings()
    for line in deprecation_warnings(s.pipeline):
        _err(f"warning: {line}")
    table = load_table(s)
    plan, source = plan_for(s, table, symbol, spot=spot, strike_range=strike_range, expiry=expiry)
    if as_json:
        print(json.dumps({**plan.to_dict(), "spot_source": source}, indent=2))
    else:
        print(render_plan(plan, source))


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


def dry_run_report(
    s: Settings,
    *,
    symbols: Sequence[str] | None = None,
    strike_range: int | None = None,
    spots: dict[str, float] | None = None,
    table: InstrumentTable | None = None,
) -> str:
    """The text `shriven run --dry-run` prints: every symbol's plan and the websocket
    connections the Kite ticker would open. Connects to nothing but REST (instruments, LTP)."""
    table = table or load_table(s)
    symbols = list(symbols or s.pipeline.spot_symbols)
    prices = table.spot_keyed(spots or {})  # the same resolution as `run` (pipeline.kite)
    plans: list[SubscriptionPlan] = []
    parts: list[str] = []
    for line in deprecation_warnings(s.pipeline):
        _err(f"warning: {line}")
    seen: set[int] = set()
    for symbol in symbols:
        spot = table.resolve_spot(symbol)
        if spot.instrument_token in seen:  # "NIFTY 50" and "nse:nifty 50" are one index
            continue
        seen.add(spot.instrument_token)
        plan, source = plan_for(
            s,
            table,
            symbol,
            spot=prices.get(spot.instrument_token),
            strike_range=strike_range,
            spot_hint="--spot '{symbol}=PRICE'",
        )
        plans.append(plan)
        parts.append(render_plan(plan, source))
    tokens = [t for p in plans for t in p.tokens]
    groups = split_connections(tokens)
    summary = [
        f"Kite: {len(set(tokens))} instruments for {len(plans)} symbol(s) over "
        f"{len(groups)} websocket connection(s) (at most {KITE_MAX_CONNECTIONS}, "
        f"{KITE_MAX_PER_CONNECTION} instruments each) to {s.kite_ws_url}:"
    ]
    for n, group in enumerate(groups, 1):
        summary.append(f"  connection {n}: {len(group)} instruments")
    summary.append("dry run: nothing was connected or recorded")
    return "\n\n".join(parts) + "\n\n" + "\n".join(summary)

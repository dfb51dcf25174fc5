"""Kite plans for commands: the instrument table, spot prices without a running feed (Kite's LTP
API, else the last tick recorded in the WAL), the plan of one symbol and the text of
``shriven show-subscriptions`` and the Kite part of ``shriven run --dry-run``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shriven.config import Settings, deprecation_warnings
from shriven.errors import UniverseError
from shriven.events import KiteTick, kite_price_divisor
from shriven.feeds.kite.auth import KiteAuth, has_credentials
from shriven.feeds.kite.instruments import (
    CacheMetadata,
    Instrument,
    ProgressFn,
    cache_paths,
    fetch_instruments,
    is_fresh,
    load_instruments,
    read_metadata,
)
from shriven.feeds.kite.spot import kite_ltp
from shriven.universe import (
    InstrumentTable,
    SubscriptionPlan,
    build_plan,
    qualified_symbol,
    split_connections,
)
from shriven.universe.plan import KITE_MAX_CONNECTIONS, KITE_MAX_PER_CONNECTION
from shriven.wal import read_records

Warn = Callable[[str], None]

# Windows tried, newest first, so a running recorder answers without reading old segments.
_LOOKBACK_NS = (15 * 60 * 10**9, 24 * 3600 * 10**9, 7 * 24 * 3600 * 10**9)


def last_recorded_tick(
    data_dir: Path, token: int, now_ns: int | None = None
) -> tuple[float, int] | None:
    """(last_price, recv_ns) of the newest KiteTick for ``token`` under ``data_dir/ticks``, or
    None when nothing was recorded in the last week."""
    ticks = Path(data_dir) / "ticks"
    if not ticks.is_dir():
        return None
    now_ns = now_ns or time.time_ns()
    for window in _LOOKBACK_NS:
        last: KiteTick | None = None
        for rec in read_records(ticks, start_ns=now_ns - window, strict=False):
            if type(rec) is KiteTick and rec.instrument_token == token:
                last = rec
        if last is not None:
            return last.last_price / kite_price_divisor(token), last.recv_ns
    return None


def last_recorded_price(data_dir: Path, token: int, now_ns: int | None = None) -> float | None:
    """The last_price of the newest KiteTick for ``token`` under ``data_dir/ticks``, or None.
    Returns None when nothing was recorded."""
    found = last_recorded_tick(data_dir, token, now_ns)
    return None if found is None else found[0]


def resolve_spot_price(
    settings: Settings, spot: Instrument, hint: str = "--spot PRICE"
) -> tuple[float, str]:
    """(price, where it came from) for ``spot`` without a user-given price; ``hint`` is the
    option to suggest when there is none."""
    if has_credentials(settings):
        return kite_ltp(KiteAuth.from_settings(settings), spot), "Kite LTP"
    found = last_recorded_tick(settings.pipeline.data_dir, spot.instrument_token)
    if found is not None:
        price, recv_ns = found
        when = datetime.fromtimestamp(recv_ns / 1e9, _zone(settings.market_tz))
        # the price may be days old: say when it was recorded
        return price, (
            f"last tick recorded in {settings.pipeline.data_dir} at {when:%Y-%m-%d %H:%M:%S %Z}"
        )
    raise UniverseError(
        f"no spot price for {spot.tradingsymbol!r}: pass {hint}, or set the ZERODHA_* "
        "credentials so the Kite quote API can be asked (no recorded tick found either)"
    )


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def authorization(s: Settings) -> str | None:
    """The Authorization header for the dump when credentials are set (logging in if no cached
    token is valid); None without credentials, the dump is then fetched anonymously."""
    if not has_credentials(s):
        return None
    return KiteAuth.from_settings(s).session().authorization


def instruments_path(s: Settings) -> Path:
    """Where the cached instrument dump is."""
    return cache_paths(s.cache_dir)[0]


def fresh_instrument_cache(s: Settings) -> CacheMetadata | None:
    """The cache's metadata when it is fresh (fetched after the last 08:00 IST from the same
    API root), else None."""
    meta = read_metadata(s.cache_dir)
    if meta is not None and is_fresh(meta, datetime.now(UTC), s.kite_api_root):
        return meta
    return None


def fetch_instrument_dump(s: Settings, *, progress: ProgressFn | None = None) -> CacheMetadata:
    """Download the instrument dump into the cache now (`shriven instruments fetch`)."""
    _, meta = fetch_instruments(
        s.cache_dir, s.kite_api_root, authorization=authorization(s), progress=progress
    )
    return meta


def load_table(
    s: Settings, *, force: bool = False, progress: ProgressFn | None = None
) -> InstrumentTable:
    """The instrument table for commands: the fresh cache, else a fetch."""
    rows, _ = load_instruments(
        s.cache_dir,
        s.kite_api_root,
        force=force,
        authorization=lambda: authorization(s),
        progress=progress,
    )
    return InstrumentTable(rows)


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


def dry_run_report(
    s: Settings,
    *,
    symbols: Sequence[str] | None = None,
    strike_range: int | None = None,
    spots: dict[str, float] | None = None,
    table: InstrumentTable | None = None,
    warn: Warn = lambda line: None,
    progress: ProgressFn | None = None,
) -> str:
    """The text `shriven run --dry-run` prints: every symbol's plan and the websocket
    connections the Kite ticker would open. Connects to nothing but REST (instruments, LTP).
    ``warn`` gets each deprecation warning, ``progress`` the instrument download's."""
    table = table or load_table(s, progress=progress)
    symbols = list(symbols or s.pipeline.spot_symbols)
    prices = table.spot_keyed(spots or {})  # the same resolution as `run` (app.kite_universe)
    plans: list[SubscriptionPlan] = []
    parts: list[str] = []
    for line in deprecation_warnings(s.pipeline):
        warn(line)
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

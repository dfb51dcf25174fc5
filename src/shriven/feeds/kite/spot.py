"""Where a spot price comes from when the user gives none: Kite's LTP API when credentials are
set, else the last tick recorded in the WAL, else an error saying what to pass."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shriven.config import Settings
from shriven.errors import UniverseError
from shriven.events import KiteTick, kite_price_divisor
from shriven.feeds.kite.auth import KiteAuth, has_credentials
from shriven.feeds.kite.instruments import Instrument
from shriven.wal import read_records

# Windows tried, newest first, so a running recorder answers without reading old segments.
_LOOKBACK_NS = (15 * 60 * 10**9, 24 * 3600 * 10**9, 7 * 24 * 3600 * 10**9)


def kite_ltp(auth: KiteAuth, spot: Instrument) -> float:
    key = f"{spot.exchange}:{spot.tradingsymbol}"
    answer = auth.call(lambda kite: kite.ltp([key]))
    row = answer.get(key) if isinstance(answer, dict) else None
    price = row.get("last_price") if isinstance(row, dict) else None
    # A number (not a bool, not text), finite and positive: anything else is no answer.
    if type(price) not in (int, float) or not 0 < price < math.inf:
        raise UniverseError(f"Kite's LTP API returned no price for {key}; pass --spot PRICE")
    return float(price)


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

"""A generated but realistic Kite instrument table for the simulator and tests.

Layout follows the real dump: indices in segment INDICES with their real tokens (NIFTY 50 is
256265, NIFTY BANK 260105), futures for three months (``NIFTY25DECFUT``), monthly options
(``NIFTY25DEC25000CE``) and NIFTY weekly options (``NIFTY25D0925000CE``: year, month code
1-9/O/N/D, day). NFO tokens are ``exchange_token << 8 | 2`` like Kite's. Expiries fall on
Tuesdays (monthly = the month's last Tuesday); exchange holidays are ignored.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from shriven.feeds.kite.instruments import Instrument

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKLY_MONTH_CODE = "123456789OND"
SEGMENT_NFO = 2
SEGMENT_INDICES = 9


@dataclass(frozen=True, slots=True)
class IndexSpec:
    spot_symbol: str
    underlying: str
    instrument_token: int  # the real Kite token of the index
    spot_price: float
    strike_interval: int  # near the money
    lot_size: int
    weekly: bool  # weekly expiries besides the monthly ones


DEFAULT_INDICES: tuple[IndexSpec, ...] = (
    IndexSpec("NIFTY 50", "NIFTY", 256265, 25_000.0, 50, 75, weekly=True),
    IndexSpec("NIFTY BANK", "BANKNIFTY", 260105, 52_000.0, 100, 35, weekly=False),
    IndexSpec("NIFTY FIN SERVICE", "FINNIFTY", 257801, 24_000.0, 50, 65, weekly=False),
    IndexSpec("NIFTY MID SELECT", "MIDCPNIFTY", 288009, 12_000.0, 25, 140, weekly=False),
)
# Indices without derivatives, as in the real dump.
PLAIN_INDICES: tuple[tuple[str, int], ...] = (("INDIA VIX", 264969), ("NIFTY IT", 259849))


def last_tuesday(year: int, month: int) -> date:
    first_next = date(year + month // 12, month % 12 + 1, 1)
    d = first_next - timedelta(days=1)
    return d - timedelta(days=(d.weekday() - 1) % 7)


def monthly_expiries(today: date, count: int = 3) -> list[date]:
    """The next ``count`` monthly expiries on or after ``today``."""
    out: list[date] = []
    y, m = today.year, today.month
    while len(out) < count:
        e = last_tuesday(y, m)
        if e >= today:
            out.append(e)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def weekly_expiries(today: date, count: int = 4) -> list[date]:
    """The next ``count`` Tuesdays on or after ``today``."""
    first = today + timedelta(days=(1 - today.weekday()) % 7)
    return [first + timedelta(weeks=k) for k in range(count)]


def future_symbol(underlying: str, expiry: date) -> str:
    return f"{underlying}{expiry:%y}{_MONTHS[expiry.month - 1]}FUT"


def option_symbol(underlying: str, expiry: date, strike: float, kind: str, monthly: bool) -> str:
    s = f"{strike:g}"
    if monthly:
        return f"{underlying}{expiry:%y}{_MONTHS[expiry.month - 1]}{s}{kind}"
    return f"{underlying}{expiry:%y}{_WEEKLY_MONTH_CODE[expiry.month - 1]}{expiry:%d}{s}{kind}"


def strikes_around(spot: float, interval: int, near: int = 40, far: int = 20) -> list[float]:
    """``near`` strikes each side at ``interval``, then ``far`` more at twice the interval."""
    atm = round(spot / interval) * interval
    out = {atm + k * interval for k in range(-near, near + 1)}
    edge = near * interval
    out |= {atm + edge + k * 2 * interval for k in range(1, far + 1)}
    out |= {atm - edge - k * 2 * interval for k in range(1, far + 1)}
    return sorted(float(s) for s in out if s > 0)


def generate_instruments(
    today: date,
    indices: Iterable[IndexSpec] = DEFAULT_INDICES,
    *,
    seed: int = 0,
    futures_months: int = 3,
    weeklies: int = 4,
) -> list[Instrument]:
    """Spot rows, futures and option chains for ``indices`` as listed on ``today``."""
    rng = random.Random(seed)
    next_exchange_token = 35_000 + rng.randrange(0, 5_000)
    rows: list[Instrument] = []

    def nfo(symbol: str, name: str, expiry: date, strike: float, tick: float, lot: int, kind: str):
        nonlocal next_exchange_token
        next_exchange_token += 1
        token = (next_exchange_token << 8) | SEGMENT_NFO
        segment = "NFO-FUT" if kind == "FUT" else "NFO-OPT"
        rows.append(
            Instrument(
                token,
                next_exchange_token,
                symbol,
                name,
                0.0,
                expiry,
                strike,
                tick,
                lot,
                kind,
                segment,
                "NFO",
            )
        )

    for spec in indices:
        rows.append(
            Instrument(
                spec.instrument_token,
                spec.instrument_token >> 8,
                spec.spot_symbol,
                spec.spot_symbol,
                0.0,
                None,
                0.0,
                0.0,
                0,
                "EQ",
                "INDICES",
                "NSE",
            )
        )
    for symbol, token in PLAIN_INDICES:
        rows.append(
            Instrument(
                token, token >> 8, symbol, symbol, 0.0, None, 0.0, 0.0, 0, "EQ", "INDICES", "NSE"
            )
        )
    for spec in indices:
        months = monthly_expiries(today, futures_months)
        for e in months:
            nfo(
                future_symbol(spec.underlying, e),
                spec.underlying,
                e,
                0.0,
                0.1,
                spec.lot_size,
                "FUT",
            )
        expiries = {e: True for e in months}
        if spec.weekly:
            for e in weekly_expiries(today, weeklies):
                expiries.setdefault(e, False)
        strikes = strikes_around(spec.spot_price, spec.strike_interval)
        for e in sorted(expiries):
            for strike in strikes:
                for kind in ("CE", "PE"):
                    sym = option_symbol(spec.underlying, e, strike, kind, expiries[e])
                    nfo(sym, spec.underlying, e, strike, 0.05, spec.lot_size, kind)
    return rows

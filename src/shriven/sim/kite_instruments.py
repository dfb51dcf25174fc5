"""A generated but realistic Kite instrument table for the simulator and tests.

Layout follows the real dump: indices in segment INDICES with their real tokens (NIFTY 50 is
256265, NIFTY BANK 260105), futures for three months (``NIFTY25DECFUT``), monthly options
(``NIFTY25DEC25000CE``) and NIFTY weekly options (``NIFTY25D0925000CE``: year, month code
1-9/O/N/D, day). NFO tokens are ``exchange_token << 8 | 2`` like Kite's (BFO: ``| 5``).

The 2025-26 rules: NSE derivatives expire on Tuesdays (monthly = the month's last Tuesday; NIFTY
also weekly), BSE's (SENSEX weekly) on Thursdays; strikes are listed at the index's interval near
the money and wider far out (BANKNIFTY: 100 near, 500 far). Exchange holidays are ignored.
:data:`DESK_SPECS` adds SENSEX and a stock (RELIANCE, with strikes off its 10-rupee grid and a BSE
row listed before the NSE one); a spec can leave strikes unlisted, or list no futures or options.
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
SEGMENT_BFO = 5
SEGMENT_INDICES = 9
TUESDAY, THURSDAY = 1, 3


@dataclass(frozen=True, slots=True)
class IndexSpec:
    spot_symbol: str
    underlying: str
    instrument_token: int  # the real Kite token of the index
    spot_price: float
    strike_interval: float  # near the money
    lot_size: int
    weekly: bool  # weekly expiries besides the monthly ones
    far_interval: float | None = None  # beyond ``near`` strikes; default twice strike_interval
    near: int = 40  # strikes each side at strike_interval
    far: int = 20  # then this many more each side at far_interval
    unlisted: tuple[float, ...] = ()  # strikes the exchange leaves out of the grid
    extra_strikes: tuple[float, ...] = ()  # strikes off the grid (after a corporate action)
    spot_segment: str = "INDICES"  # NSE or BSE for a stock
    spot_exchange: str = "NSE"
    derivatives_exchange: str = "NFO"  # BFO for BSE's
    expiry_weekday: int = TUESDAY
    futures: bool = True
    options: bool = True
    also_on_bse: int | None = None  # a stock's BSE token: its BSE row is listed first


DEFAULT_INDICES: tuple[IndexSpec, ...] = (
    IndexSpec("NIFTY 50", "NIFTY", 256265, 25_000.0, 50, 75, weekly=True),
    IndexSpec("NIFTY BANK", "BANKNIFTY", 260105, 52_000.0, 100, 35, weekly=False, far_interval=500),
    IndexSpec("NIFTY FIN SERVICE", "FINNIFTY", 257801, 24_000.0, 50, 65, weekly=False),
    IndexSpec("NIFTY MID SELECT", "MIDCPNIFTY", 288009, 12_000.0, 25, 140, weekly=False),
)
SENSEX = IndexSpec(
    "SENSEX", "SENSEX", 265, 82_000.0, 100, 20, weekly=True, spot_exchange="BSE",
    derivatives_exchange="BFO", expiry_weekday=THURSDAY,
)  # fmt: skip
RELIANCE = IndexSpec(
    "RELIANCE", "RELIANCE", 738561, 1_450.0, 10, 500, weekly=False, near=20, far=10,
    extra_strikes=(1_447.5, 1_457.5), spot_segment="NSE", also_on_bse=128083204,
)  # fmt: skip
DESK_SPECS: tuple[IndexSpec, ...] = (*DEFAULT_INDICES, SENSEX, RELIANCE)
# Indices without derivatives, as in the real dump.
PLAIN_INDICES: tuple[tuple[str, int], ...] = (("INDIA VIX", 264969), ("NIFTY IT", 259849))


def last_tuesday(year: int, month: int, weekday: int = TUESDAY) -> date:
    """The month's last Tuesday (or last ``weekday``, Monday = 0)."""
    first_next = date(year + month // 12, month % 12 + 1, 1)
    d = first_next - timedelta(days=1)
    return d - timedelta(days=(d.weekday() - weekday) % 7)


def monthly_expiries(today: date, count: int = 3, weekday: int = TUESDAY) -> list[date]:
    """The next ``count`` monthly expiries on or after ``today``."""
    out: list[date] = []
    y, m = today.year, today.month
    while len(out) < count:
        e = last_tuesday(y, m, weekday)
        if e >= today:
            out.append(e)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def weekly_expiries(today: date, count: int = 4, weekday: int = TUESDAY) -> list[date]:
    """The next ``count`` Tuesdays (or ``weekday``s) on or after ``today``."""
    first = today + timedelta(days=(weekday - today.weekday()) % 7)
    return [first + timedelta(weeks=k) for k in range(count)]


def future_symbol(underlying: str, expiry: date) -> str:
    return f"{underlying}{expiry:%y}{_MONTHS[expiry.month - 1]}FUT"


def option_symbol(underlying: str, expiry: date, strike: float, kind: str, monthly: bool) -> str:
    s = f"{strike:g}"
    if monthly:
        return f"{underlying}{expiry:%y}{_MONTHS[expiry.month - 1]}{s}{kind}"
    return f"{underlying}{expiry:%y}{_WEEKLY_MONTH_CODE[expiry.month - 1]}{expiry:%d}{s}{kind}"


def strikes_around(
    spot: float,
    interval: float,
    near: int = 40,
    far: int = 20,
    far_interval: float | None = None,
) -> list[float]:
    """``near`` strikes each side at ``interval``, then ``far`` more at ``far_interval`` (default
    twice the interval) from the first multiple of it beyond the near ones."""
    wide = far_interval or 2 * interval
    atm = round(spot / interval) * interval
    out = {atm + k * interval for k in range(-near, near + 1)}
    top, bottom = atm + near * interval, atm - near * interval
    first_up = (top // wide + 1) * wide
    first_down = -((-bottom) // wide + 1) * wide
    out |= {first_up + k * wide for k in range(far)}
    out |= {first_down - k * wide for k in range(far)}
    return sorted(float(s) for s in out if s > 0)


def spec_strikes(spec: IndexSpec) -> list[float]:
    """The strikes listed for ``spec``: its grid without the unlisted ones, plus the extras."""
    grid = strikes_around(
        spec.spot_price, spec.strike_interval, spec.near, spec.far, spec.far_interval
    )
    gone = {round(u * 100) for u in spec.unlisted}
    return sorted({s for s in grid if round(s * 100) not in gone} | set(spec.extra_strikes))


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

    def derivative(spec: IndexSpec, symbol: str, expiry: date, strike: float, kind: str) -> None:
        nonlocal next_exchange_token
        next_exchange_token += 1
        exchange = spec.derivatives_exchange
        token = (next_exchange_token << 8) | (SEGMENT_BFO if exchange == "BFO" else SEGMENT_NFO)
        segment = f"{exchange}-FUT" if kind == "FUT" else f"{exchange}-OPT"
        tick = 0.1 if kind == "FUT" else 0.05
        rows.append(
            Instrument(
                token,
                next_exchange_token,
                symbol,
                spec.underlying,
                0.0,
                expiry,
                strike,
                tick,
                spec.lot_size,
                kind,
                segment,
                exchange,
            )
        )

    def spot_row(token: int, symbol: str, segment: str, exchange: str) -> Instrument:
        name = symbol if segment == "INDICES" else f"{symbol} LIMITED"
        tick = 0.0 if segment == "INDICES" else 0.1
        return Instrument(token, token >> 8, symbol, name, 0.0, None, 0.0, tick, 1 if tick else 0,
                          "EQ", segment, exchange)  # fmt: skip

    for spec in indices:
        if spec.also_on_bse is not None:
            rows.append(spot_row(spec.also_on_bse, spec.spot_symbol, "BSE", "BSE"))
        rows.append(
            spot_row(spec.instrument_token, spec.spot_symbol, spec.spot_segment, spec.spot_exchange)
        )
    for symbol, token in PLAIN_INDICES:
        rows.append(spot_row(token, symbol, "INDICES", "NSE"))
    for spec in indices:
        months = monthly_expiries(today, futures_months, spec.expiry_weekday)
        if spec.futures:
            for e in months:
                derivative(spec, future_symbol(spec.underlying, e), e, 0.0, "FUT")
        if not spec.options:
            continue
        expiries = {e: True for e in months}
        if spec.weekly:
            for e in weekly_expiries(today, weeklies, spec.expiry_weekday):
                expiries.setdefault(e, False)
        strikes = spec_strikes(spec)
        for e in sorted(expiries):
            for strike in strikes:
                for kind in ("CE", "PE"):
                    sym = option_symbol(spec.underlying, e, strike, kind, expiries[e])
                    derivative(spec, sym, e, strike, kind)
    return rows

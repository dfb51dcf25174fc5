"""Which Kite instruments to record for a spot index: spot, futures months and an option chain
around the money. Pure functions over an :class:`InstrumentTable` and a price.

Rules:
- futures: the first ``futures_months`` live contracts of the underlying (current and next month);
  a contract stops being live at 15:30 IST on its expiry day, so the months roll by themselves.
- option expiry: ``nearest`` (first live expiry), ``next`` (second) or ``monthly`` (the first
  live expiry shared with a futures contract, i.e. the month's last expiry).
- ATM: spot rounded half-up to the strike interval. The interval comes from config when given,
  otherwise it is the most common gap between the listed strikes nearest the spot.
- chain: ATM +- ``strike_range`` intervals, a call and a put at each listed strike.
- re-centring: only once spot is ``0.5 + hysteresis`` intervals away from the current ATM, so a
  price hovering at a rounding boundary does not churn subscriptions.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from itertools import pairwise
from typing import Literal

from shriven.errors import UniverseError
from shriven.events import KITE_MODES
from shriven.feeds.kite.instruments import Instrument, instrument_class
from shriven.feeds.kite.protocol import MAX_CONNECTIONS_PER_KEY, MAX_TOKENS_PER_CONNECTION
from shriven.universe.table import InstrumentTable

ExpiryChoice = Literal["nearest", "next", "monthly"]
EXPIRY_CHOICES: tuple[str, ...] = ("nearest", "next", "monthly")
DEFAULT_HYSTERESIS = 0.25
DEFAULT_MODE = "full"


@dataclass(frozen=True, slots=True)
class SubscriptionPlan:
    spot_symbol: str
    underlying: str
    spot_price: float
    atm_strike: float
    strike_interval: float
    strike_range: int
    expiry_choice: str
    option_expiry: date
    spot: Instrument
    futures: tuple[Instrument, ...]
    calls: tuple[Instrument, ...]  # ascending strike
    puts: tuple[Instrument, ...]  # ascending strike
    missing_strikes: tuple[float, ...] = ()  # wanted strikes the exchange does not list
    mode: str = DEFAULT_MODE  # ticker mode of every class without its own in class_modes
    interval_override: float | None = None
    futures_months: int = 2
    class_modes: tuple[tuple[str, str], ...] = ()  # (instrument class, mode), sorted

    def mode_of(self, instrument: Instrument) -> str:
        """The ticker mode for one instrument: its class's mode, else the plan's ``mode``."""
        cls = instrument_class(instrument.instrument_type, instrument.segment)
        return dict(self.class_modes).get(cls, self.mode)

    @property
    def instruments(self) -> tuple[Instrument, ...]:
        return (self.spot, *self.futures, *self.calls, *self.puts)

    @property
    def tokens(self) -> tuple[int, ...]:
        return tuple(i.instrument_token for i in self.instruments)

    @property
    def modes(self) -> dict[int, str]:
        """token -> ticker mode (per instrument class), the shape ``update_subscriptions``
        takes."""
        return {i.instrument_token: self.mode_of(i) for i in self.instruments}

    @property
    def modes_by_class(self) -> dict[str, str]:
        """Instrument class -> mode for the classes this plan holds (index, future, option)."""
        return {
            instrument_class(i.instrument_type, i.segment): self.mode_of(i)
            for i in self.instruments
        }

    @property
    def tradingsymbols(self) -> dict[int, str]:
        return {i.instrument_token: i.tradingsymbol for i in self.instruments}

    @property
    def expiries(self) -> tuple[date, ...]:
        """Every distinct expiry in the plan (futures months and the option expiry), sorted."""
        return tuple(sorted({self.option_expiry, *(f.expiry for f in self.futures if f.expiry)}))

    def __len__(self) -> int:
        return 1 + len(self.futures) + len(self.calls) + len(self.puts)

    def to_dict(self) -> dict[str, object]:
        def row(i: Instrument) -> dict[str, object]:
            return {
                "instrument_token": i.instrument_token,
                "tradingsymbol": i.tradingsymbol,
                "exchange": i.exchange,
                "instrument_type": i.instrument_type,
                "expiry": i.expiry.isoformat() if i.expiry else None,
                "strike": i.strike,
                "lot_size": i.lot_size,
            }

        return {
            "spot_symbol": self.spot_symbol,
            "underlying": self.underlying,
            "spot_price": self.spot_price,
            "atm_strike": self.atm_strike,
            "strike_interval": self.strike_interval,
            "strike_range": self.strike_range,
            "expiry_choice": self.expiry_choice,
            "option_expiry": self.option_expiry.isoformat(),
            "mode": self.mode,
            "modes_by_class": self.modes_by_class,
            "count": len(self),
            "spot": row(self.spot),
            "futures": [row(i) for i in self.futures],
            "calls": [row(i) for i in self.calls],
            "puts": [row(i) for i in self.puts],
            "missing_strikes": list(self.missing_strikes),
            "tokens": list(self.tokens),
        }


@dataclass(frozen=True, slots=True)
class PlanDiff:
    """A change of subscriptions: what the ticker must subscribe (token -> mode) and drop.

    The WAL marker of a change is written by the ticker adapter
    (``KiteTickerFeed.update_subscriptions(..., reason=diff.reason)``), once per change."""

    subscribe: dict[int, str] = field(default_factory=dict)
    unsubscribe: list[int] = field(default_factory=list)
    reason: str = ""  # "initial", "recentre", "rollover"

    def __bool__(self) -> bool:
        return bool(self.subscribe or self.unsubscribe)


# ---------------------------------------------------------------- building


def build_plan(
    instruments: InstrumentTable | Sequence[Instrument],
    spot_symbol: str,
    spot_price: float,
    *,
    as_of: datetime | None = None,
    strike_range: int = 10,
    expiry: str = "nearest",
    strike_interval: float | None = None,
    futures_months: int = 2,
    mode: str = DEFAULT_MODE,
    class_modes: Mapping[str, str] | None = None,
) -> SubscriptionPlan:
    """The subscription plan for one spot symbol at ``spot_price`` as of ``as_of`` (aware).

    ``mode`` is the ticker mode of every instrument; ``class_modes`` overrides it per instrument
    class (``{"option": "quote"}``: see :func:`instrument_class`)."""
    table = (
        instruments if isinstance(instruments, InstrumentTable) else InstrumentTable(instruments)
    )
    as_of = as_of or datetime.now(UTC)
    if expiry not in EXPIRY_CHOICES:
        raise UniverseError(f"unknown expiry choice {expiry!r}: use nearest, next or monthly")
    if not (spot_price > 0 and math.isfinite(spot_price)):
        raise UniverseError(f"spot price must be a positive number, got {spot_price!r}")
    if strike_range < 0:
        raise UniverseError(f"strike range must be 0 or more, got {strike_range}")
    for cls, m in [("every class", mode), *(class_modes or {}).items()]:
        if m not in KITE_MODES:
            raise UniverseError(f"unknown ticker mode {m!r} for {cls}: use ltp, quote or full")
    spot = table.resolve_spot(spot_symbol)
    underlying = table.underlying_of(spot)
    futures = tuple(table.live_futures(underlying, as_of)[:futures_months])
    options = table.live_options(underlying, as_of)
    option_expiry = choose_expiry(
        sorted({o.expiry for o in options if o.expiry}),
        {f.expiry for f in table.live_futures(underlying, as_of) if f.expiry},
        expiry,
        underlying,
    )
    chain = [o for o in options if o.expiry == option_expiry]
    strikes = sorted({o.strike for o in chain})
    interval = float(strike_interval) if strike_interval else derive_interval(strikes, spot_price)
    atm = atm_strike(spot_price, interval)
    wanted = [atm + k * interval for k in range(-strike_range, strike_range + 1)]
    by_key: dict[tuple[int, str], Instrument] = {}
    for o in chain:
        by_key.setdefault((_key(o.strike), o.instrument_type), o)
    calls, puts, missing = [], [], []
    for strike in wanted:
        ce = by_key.get((_key(strike), "CE"))
        pe = by_key.get((_key(strike), "PE"))
        if ce is None and pe is None:
            missing.append(strike)
        if ce is not None:
            calls.append(ce)
        if pe is not None:
            puts.append(pe)
    if not calls and not puts:
        raise UniverseError(
            f"no {underlying} options listed within {strike_range} strikes of {atm:g} for "
            f"{option_expiry}; check the strike interval ({interval:g}) or the spot price"
        )
    return SubscriptionPlan(
        spot_symbol=spot.tradingsymbol,
        underlying=underlying,
        spot_price=float(spot_price),
        atm_strike=atm,
        strike_interval=interval,
        strike_range=strike_range,
        expiry_choice=expiry,
        option_expiry=option_expiry,
        spot=spot,
        futures=futures,
        calls=tuple(calls),
        puts=tuple(puts),
        missing_strikes=tuple(missing),
        mode=mode,
        interval_override=float(strike_interval) if strike_interval else None,
        futures_months=futures_months,
        class_modes=tuple(sorted((class_modes or {}).items())),
    )


def choose_expiry(
    option_expiries: Sequence[date], futures_expiries: set[date], choice: str, underlying: str
) -> date:
    if not option_expiries:
        raise UniverseError(
            f"no live {underlying} option expiries in the instruments; refresh them with "
            "`shriven instruments fetch --force`"
        )
    if choice == "nearest":
        return option_expiries[0]
    if choice == "next":
        if len(option_expiries) < 2:
            raise UniverseError(f"{underlying} lists only one live option expiry; use nearest")
        return option_expiries[1]
    monthly = [e for e in option_expiries if e in futures_expiries]
    if monthly:
        return monthly[0]
    # No futures to anchor on: the month's last listed expiry is the monthly contract.
    first = option_expiries[0]
    return max(e for e in option_expiries if (e.year, e.month) == (first.year, first.month))


def derive_interval(strikes: Sequence[float], spot_price: float, window: int = 30) -> float:
    """The most common gap between the ``window`` listed strikes nearest the spot (ties: the
    smaller gap). Far strikes are often listed at wider gaps, hence the window."""
    near = sorted(sorted(strikes, key=lambda s: abs(s - spot_price))[:window])
    gaps = Counter(round(b - a, 6) for a, b in pairwise(near) if b > a)
    if not gaps:
        raise UniverseError(
            "cannot derive the strike interval from fewer than two listed strikes; set "
            "SHRIVEN_PIPELINE__STRIKE_INTERVAL for this index"
        )
    best = max(gaps.values())
    return float(min(g for g, n in gaps.items() if n == best))


def atm_strike(spot_price: float, interval: float) -> float:
    """Spot rounded half-up to a multiple of ``interval``."""
    return math.floor(spot_price / interval + 0.5) * interval


def _key(strike: float) -> int:
    return round(strike * 100)


# ---------------------------------------------------------------- changes


def diff_plans(
    old: Sequence[SubscriptionPlan] | SubscriptionPlan | None,
    new: Sequence[SubscriptionPlan] | SubscriptionPlan,
    reason: str = "",
) -> PlanDiff:
    """Tokens to subscribe (in ``new`` but not ``old``) and to unsubscribe (the reverse)."""
    old_modes = _modes(old)
    new_modes = _modes(new)
    subscribe = {t: m for t, m in new_modes.items() if old_modes.get(t) != m}
    unsubscribe = sorted(t for t in old_modes if t not in new_modes)
    return PlanDiff(subscribe=subscribe, unsubscribe=unsubscribe, reason=reason)


def _modes(plans: Sequence[SubscriptionPlan] | SubscriptionPlan | None) -> dict[int, str]:
    if plans is None:
        return {}
    if isinstance(plans, SubscriptionPlan):
        return plans.modes
    out: dict[int, str] = {}
    for p in plans:
        out.update(p.modes)
    return out


def needs_recentre(
    plan: SubscriptionPlan, spot_price: float, hysteresis: float = DEFAULT_HYSTERESIS
) -> bool:
    """True once spot is at least ``0.5 + hysteresis`` strike intervals from the plan's ATM."""
    return abs(spot_price - plan.atm_strike) >= (0.5 + hysteresis) * plan.strike_interval


def update_plan(
    plan: SubscriptionPlan,
    instruments: InstrumentTable | Sequence[Instrument],
    spot_price: float,
    *,
    as_of: datetime | None = None,
    hysteresis: float = DEFAULT_HYSTERESIS,
) -> tuple[SubscriptionPlan, PlanDiff]:
    """Roll over expired contracts, or re-centre the chain on a moved spot, as a diff.

    Returns the plan unchanged with an empty diff when neither applies."""
    table = (
        instruments if isinstance(instruments, InstrumentTable) else InstrumentTable(instruments)
    )
    as_of = as_of or datetime.now(UTC)

    def rebuild(price: float) -> SubscriptionPlan:
        return build_plan(
            table,
            plan.spot_symbol,
            price,
            as_of=as_of,
            strike_range=plan.strike_range,
            expiry=plan.expiry_choice,
            strike_interval=plan.interval_override,
            futures_months=plan.futures_months,
            mode=plan.mode,
            class_modes=dict(plan.class_modes),
        )

    recentre = needs_recentre(plan, spot_price, hysteresis)
    candidate = rebuild(spot_price if recentre else plan.atm_strike)
    # Contracts compare by token: the daily dump changes other columns (last_price) of the same
    # contract, which is no rollover.
    rolled = [f.instrument_token for f in candidate.futures] != [
        f.instrument_token for f in plan.futures
    ]
    if candidate.option_expiry != plan.option_expiry or rolled:
        new = candidate if recentre else rebuild(spot_price)
        return new, diff_plans(plan, new, reason="rollover")
    if recentre:
        return candidate, diff_plans(plan, candidate, reason="recentre")
    return replace(plan, spot_price=float(spot_price)), PlanDiff()


# ---------------------------------------------------------------- connections


KITE_MAX_PER_CONNECTION = MAX_TOKENS_PER_CONNECTION
KITE_MAX_CONNECTIONS = MAX_CONNECTIONS_PER_KEY


def split_connections(
    tokens: Sequence[int],
    per_connection: int = KITE_MAX_PER_CONNECTION,
    max_connections: int = KITE_MAX_CONNECTIONS,
) -> list[tuple[int, ...]]:
    """Spread tokens over websocket connections (Kite: 3000 per connection, 3 per API key)."""
    unique = list(dict.fromkeys(tokens))
    groups = [tuple(unique[i : i + per_connection]) for i in range(0, len(unique), per_connection)]
    if len(groups) > max_connections:
        raise UniverseError(
            f"{len(unique)} instruments need {len(groups)} connections, Kite allows "
            f"{max_connections} of {per_connection}: lower --strike-range or record fewer symbols"
        )
    return groups

"""Which Kite instruments to record for a spot symbol: spot, futures months and an option chain
around the money. Pure functions over an :class:`InstrumentTable` and a price.

Rules:
- futures: the first ``futures_months`` live contracts of the underlying (current and next month);
  a contract stops being live at 15:30 IST on its expiry day, so the months roll by themselves.
- option expiry: ``nearest`` (first live expiry), ``next`` (second) or ``monthly`` (the first
  live expiry shared with a futures contract, i.e. the month's last expiry).
- ATM: the listed strike of that expiry nearest the spot (halfway between two: the higher one).
- chain: ATM and the ``strike_range`` listed strikes on each side of it, a call and a put at
  each: 2N+1 strikes per type whatever their spacing (50 near the money, 100 or 500 far out, off
  the grid after a corporate action). Fewer on a side, or a missing month, is a plan warning.
- re-centring: once spot has passed the midpoint between ATM and its listed neighbour by
  ``hysteresis`` of their gap (0.75 of the gap by default), so a price hovering at a midpoint does
  not churn subscriptions. A fresh instrument dump re-plans around the same ATM (reason
  ``refresh``): new strikes or months are subscribed without waiting for spot to move.
"""

from __future__ import annotations

import math
from bisect import bisect_left
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
from shriven.universe.table import InstrumentTable, is_live, qualified_symbol

ExpiryChoice = Literal["nearest", "next", "monthly"]
EXPIRY_CHOICES: tuple[str, ...] = ("nearest", "next", "monthly")
DEFAULT_HYSTERESIS = 0.25
DEFAULT_MODE = "full"


@dataclass(frozen=True, slots=True)
class SubscriptionPlan:
    spot_symbol: str
    underlying: str
    spot_price: float
    atm_strike: float  # the listed strike nearest spot; 0 when the underlying lists no options
    strike_interval: float  # the usual gap between listed strikes near ATM, for people to read
    strike_range: int
    expiry_choice: str
    option_expiry: date | None  # None: the underlying lists no options
    spot: Instrument
    futures: tuple[Instrument, ...]
    calls: tuple[Instrument, ...]  # ascending strike
    puts: tuple[Instrument, ...]  # ascending strike
    missing_strikes: tuple[float, ...] = ()  # chain strikes listed with a call or a put only
    mode: str = DEFAULT_MODE  # ticker mode of every class without its own in class_modes
    futures_months: int = 2
    class_modes: tuple[tuple[str, str], ...] = ()  # (instrument class, mode), sorted
    neighbours: tuple[float | None, float | None] = (None, None)  # listed strikes around ATM
    strikes_below: int = 0  # chain strikes below ATM (strike_range unless fewer are listed)
    strikes_above: int = 0
    warnings: tuple[str, ...] = ()  # what the plan lacks, one line each

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
        options = {self.option_expiry} if self.option_expiry else set()
        return tuple(sorted({*options, *(f.expiry for f in self.futures if f.expiry)}))

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
            "option_expiry": self.option_expiry.isoformat() if self.option_expiry else None,
            "strikes_below": self.strikes_below,
            "strikes_above": self.strikes_above,
            "mode": self.mode,
            "modes_by_class": self.modes_by_class,
            "count": len(self),
            "spot": row(self.spot),
            "futures": [row(i) for i in self.futures],
            "calls": [row(i) for i in self.calls],
            "puts": [row(i) for i in self.puts],
            "missing_strikes": list(self.missing_strikes),
            "warnings": list(self.warnings),
            "tokens": list(self.tokens),
        }


@dataclass(frozen=True, slots=True)
class PlanDiff:
    """A change of subscriptions: what the ticker must subscribe (token -> mode) and drop.

    The WAL marker of a change is written by the ticker adapter
    (``KiteTickerFeed.update_subscriptions(..., reason=diff.reason)``), once per change."""

    subscribe: dict[int, str] = field(default_factory=dict)
    unsubscribe: list[int] = field(default_factory=list)
    reason: str = ""  # "initial", "recentre", "rollover", "refresh"

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
    live_futures = table.live_futures(underlying, as_of)
    futures = tuple(live_futures[:futures_months])
    warnings = _futures_warnings(table, underlying, len(futures), futures_months, as_of)
    base = SubscriptionPlan(
        spot_symbol=spot.tradingsymbol,
        underlying=underlying,
        spot_price=float(spot_price),
        atm_strike=0.0,
        strike_interval=0.0,
        strike_range=strike_range,
        expiry_choice=expiry,
        option_expiry=None,
        spot=spot,
        futures=futures,
        calls=(),
        puts=(),
        mode=mode,
        futures_months=futures_months,
        class_modes=tuple(sorted((class_modes or {}).items())),
    )
    if not table.lists_options(underlying):
        # Nothing a refresh could bring: record what there is and say what is not.
        note = f"{underlying} lists no options: recording the spot and futures only"
        return replace(base, warnings=(*warnings, note))
    options = table.live_options(underlying, as_of)
    option_expiry = choose_expiry(
        sorted({o.expiry for o in options if o.expiry}),
        {f.expiry for f in live_futures if f.expiry},
        expiry,
        underlying,
    )
    by_key: dict[tuple[int, str], Instrument] = {}
    for o in options:
        if o.expiry == option_expiry:
            by_key.setdefault((_key(o.strike), o.instrument_type), o)
    listed = sorted({k for k, _ in by_key})
    values = [k / 100 for k in listed]
    at = values.index(nearest_strike(values, spot_price))
    chosen = listed[max(0, at - strike_range) : at + strike_range + 1]
    below, above = at - max(0, at - strike_range), len(chosen) - 1 - min(at, strike_range)
    calls = [by_key[(k, "CE")] for k in chosen if (k, "CE") in by_key]
    puts = [by_key[(k, "PE")] for k in chosen if (k, "PE") in by_key]
    one_sided = [k / 100 for k in chosen if ((k, "CE") in by_key) != ((k, "PE") in by_key)]
    atm = values[at]
    for side, have in (("below", below), ("above", above)):
        if have < strike_range:
            warnings.append(
                f"only {have} listed {underlying} strike(s) {side} ATM {atm:g} for "
                f"{option_expiry}, not {strike_range}"
            )
    return replace(
        base,
        atm_strike=atm,
        strike_interval=derive_interval(values, spot_price),
        option_expiry=option_expiry,
        calls=tuple(calls),
        puts=tuple(puts),
        missing_strikes=tuple(one_sided),
        neighbours=(
            values[at - 1] if at > 0 else None,
            values[at + 1] if at + 1 < len(values) else None,
        ),
        strikes_below=below,
        strikes_above=above,
        warnings=tuple(warnings),
    )


def _futures_warnings(
    table: InstrumentTable, underlying: str, have: int, wanted: int, as_of: datetime
) -> list[str]:
    if have >= wanted:
        return []
    listed = table.listed_futures(underlying)
    if not listed:
        return [f"{underlying} lists no futures: the plan has none"]
    expired = len(listed) > len(table.live_futures(underlying, as_of))
    hint = "; refresh the instruments with `shriven instruments fetch --force`" if expired else ""
    return [f"only {have} live {underlying} futures month(s) listed, not {wanted}{hint}"]


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
    smaller gap), 0 with fewer than two strikes. Only shown to people: the chain counts listed
    strikes, whatever their gaps."""
    near = sorted(sorted(strikes, key=lambda s: abs(s - spot_price))[:window])
    gaps = Counter(round(b - a, 6) for a, b in pairwise(near) if b > a)
    if not gaps:
        return 0.0
    best = max(gaps.values())
    return float(min(g for g, n in gaps.items() if n == best))


def nearest_strike(strikes: Sequence[float], price: float) -> float:
    """The strike of ``strikes`` (ascending, not empty) nearest ``price``; halfway between two,
    the higher one (spot rounded half-up, as on a regular grid)."""
    i = bisect_left(strikes, price)
    if i == 0:
        return strikes[0]
    if i == len(strikes):
        return strikes[-1]
    lower, upper = strikes[i - 1], strikes[i]
    return upper if upper - price <= price - lower else lower


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
    """True once spot is past the midpoint between ATM and its listed neighbour on that side by
    ``hysteresis`` of their gap (on a regular grid: 0.75 strike intervals from ATM)."""
    lower, upper = plan.neighbours
    atm = plan.atm_strike
    if spot_price > atm and upper is not None:
        return spot_price - atm >= (0.5 + hysteresis) * (upper - atm)
    if spot_price < atm and lower is not None:
        return atm - spot_price >= (0.5 + hysteresis) * (atm - lower)
    return False


def update_plan(
    plan: SubscriptionPlan,
    instruments: InstrumentTable | Sequence[Instrument],
    spot_price: float,
    *,
    as_of: datetime | None = None,
    hysteresis: float = DEFAULT_HYSTERESIS,
) -> tuple[SubscriptionPlan, PlanDiff]:
    """Roll over expired contracts, re-centre the chain on a moved spot, or take in what a fresh
    instrument dump lists around the same ATM, as a diff (reason ``rollover``, ``recentre`` or
    ``refresh``, in that order of precedence).

    Returns the plan (with the new spot price) and an empty diff when nothing changes."""
    table = (
        instruments if isinstance(instruments, InstrumentTable) else InstrumentTable(instruments)
    )
    as_of = as_of or datetime.now(UTC)

    def rebuild(price: float) -> SubscriptionPlan:
        return build_plan(
            table,
            qualified_symbol(plan.spot),
            price,
            as_of=as_of,
            strike_range=plan.strike_range,
            expiry=plan.expiry_choice,
            futures_months=plan.futures_months,
            mode=plan.mode,
            class_modes=dict(plan.class_modes),
        )

    recentre = needs_recentre(plan, spot_price, hysteresis)
    centre = plan.atm_strike if plan.atm_strike and not recentre else spot_price
    candidate = replace(rebuild(centre), spot_price=float(spot_price))
    expired = any(f.expiry and not is_live(f.expiry, as_of) for f in plan.futures) or (
        plan.option_expiry is not None and not is_live(plan.option_expiry, as_of)
    )
    if expired:
        new = candidate if centre == spot_price else rebuild(spot_price)
        return new, diff_plans(plan, new, reason="rollover")
    reason = "recentre" if recentre else "refresh"  # refresh: the listing changed, not spot
    return candidate, diff_plans(plan, candidate, reason=reason)


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

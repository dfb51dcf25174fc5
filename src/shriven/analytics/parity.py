"""Put-call parity against the future, and futures basis, on quotes (pure, no I/O).

For a European call and put of strike K and the future of the same expiry as the forward F,
parity says ``C - P = D (F - K)`` with ``D = e^(-r t)``. A desk can trade the gap only by
crossing spreads, so the deviation *after costs* is the better of the two round trips:

- buy the synthetic (buy the call at its ask, sell the put at its bid) and sell the future at
  its bid: ``D (F_bid - K) - (C_ask - P_bid)``;
- sell the synthetic (call at bid, put at ask) and buy the future at its ask:
  ``(C_bid - P_ask) - D (F_ask - K)``.

A positive value is rupees per unit of underlying gained, spreads paid. Basis: the future's
implied carry over spot, annualised (``ln(F/S) / t``), and the calendar basis between two
futures (``ln(F_next/F_current) / (t_next - t_current)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, Literal, NamedTuple, TypeVar

__all__ = [
    "BUY_SYNTHETIC",
    "SELL_SYNTHETIC",
    "Episode",
    "ParityCheck",
    "ParityEvent",
    "ParityWatch",
    "Quote",
    "annualised_basis",
    "calendar_basis",
    "parity_check",
    "threshold_step",
]

BUY_SYNTHETIC: Final = "buy_synthetic"
SELL_SYNTHETIC: Final = "sell_synthetic"
Direction = Literal["buy_synthetic", "sell_synthetic"]
K = TypeVar("K")


class Quote(NamedTuple):
    """Best bid and ask in rupees (None when the side is empty)."""

    bid: float | None
    ask: float | None

    @property
    def mid(self) -> float | None:
        if self.bid is None or self.ask is None:
            return None
        return 0.5 * (self.bid + self.ask)


class ParityCheck(NamedTuple):
    strike: float
    mid_deviation: float | None  # (C_mid - P_mid) - D (F_mid - K); None without both sides
    edge: float | None  # the better round trip after spreads (see the module); None if a side
    direction: Direction | None


def parity_check(
    strike: float, call: Quote, put: Quote, future: Quote, discount: float
) -> ParityCheck:
    mid = None
    cm, pm, fm = call.mid, put.mid, future.mid
    if cm is not None and pm is not None and fm is not None:
        mid = (cm - pm) - discount * (fm - strike)
    buy = sell = None
    if call.ask is not None and put.bid is not None and future.bid is not None:
        buy = discount * (future.bid - strike) - (call.ask - put.bid)
    if call.bid is not None and put.ask is not None and future.ask is not None:
        sell = (call.bid - put.ask) - discount * (future.ask - strike)
    if buy is None and sell is None:
        return ParityCheck(strike, mid, None, None)
    if sell is None or (buy is not None and buy >= sell):
        return ParityCheck(strike, mid, buy, BUY_SYNTHETIC)
    return ParityCheck(strike, mid, sell, SELL_SYNTHETIC)


def annualised_basis(future: float, spot: float, t: float) -> float | None:
    """ln(F/S)/t: the carry the future implies, per year (None when t or a price is not > 0)."""
    if not (future > 0 and spot > 0 and t > 0):
        return None
    return math.log(future / spot) / t


def calendar_basis(near: float, far: float, t_near: float, t_far: float) -> float | None:
    """ln(F_far/F_near)/(t_far - t_near): the carry between two futures months, per year."""
    if not (near > 0 and far > 0 and t_far > t_near):
        return None
    return math.log(far / near) / (t_far - t_near)


class ParityEvent(NamedTuple):
    """A parity violation opening (``opened``) or closing; ``edge`` is its size at that instant
    (when closing: the largest it reached)."""

    at_ns: int
    expiry: str
    strike: float
    opened: bool
    edge: float
    direction: Direction


@dataclass(slots=True)
class Episode:
    """A deviation over the threshold, open since ``since_ns``; ``peak`` is the largest edge."""

    since_ns: int
    peak: float
    direction: str


def threshold_step(
    episodes: dict[K, Episode],
    key: K,
    at_ns: int,
    edge: float | None,
    direction: str | None,
    threshold: float,
) -> Episode | None:
    """The rule every check uses: an episode opens when ``edge`` exceeds ``threshold``, grows
    its peak while it stays above, and closes when it falls to the threshold or cannot be
    computed (a side missing). Returns the episode that opened (``since_ns == at_ns``) or
    closed, else None; ``episodes`` holds the open ones."""
    was = episodes.get(key)
    if edge is not None and direction is not None and edge > threshold:
        if was is None:
            episodes[key] = opened = Episode(at_ns, edge, direction)
            return opened
        if edge > was.peak:
            was.peak = edge
        return None
    if was is not None:
        del episodes[key]
        return was
    return None


@dataclass(slots=True)
class ParityWatch:
    """Which (expiry, strike) pairs violate parity by more than ``threshold`` rupees after costs,
    kept up to date quote by quote; :meth:`update` returns the violations that opened or closed.

    The caller says what each quote is (``set_option`` / ``set_future``) and gives the discount
    factor of each expiry at the instant (it changes slowly: the caller refreshes it)."""

    threshold: float
    calls: dict[tuple[str, float], Quote] = field(default_factory=dict)
    puts: dict[tuple[str, float], Quote] = field(default_factory=dict)
    futures: dict[str, Quote] = field(default_factory=dict)
    strikes: dict[str, set[float]] = field(default_factory=dict)
    discount: dict[str, float] = field(default_factory=dict)
    open: dict[tuple[str, float], Episode] = field(default_factory=dict)
    opened_total: int = 0
    closed_total: int = 0

    def set_option(
        self, at_ns: int, expiry: str, strike: float, is_call: bool, quote: Quote
    ) -> list[ParityEvent]:
        (self.calls if is_call else self.puts)[(expiry, strike)] = quote
        self.strikes.setdefault(expiry, set()).add(strike)
        return self._check(at_ns, expiry, (strike,))

    def set_future(self, at_ns: int, expiry: str, quote: Quote) -> list[ParityEvent]:
        self.futures[expiry] = quote
        return self._check(at_ns, expiry, sorted(self.strikes.get(expiry, ())))

    def _check(
        self, at_ns: int, expiry: str, strikes: tuple[float, ...] | list[float]
    ) -> list[ParityEvent]:
        future = self.futures.get(expiry)
        if future is None:
            return []
        disc = self.discount.get(expiry, 1.0)
        events: list[ParityEvent] = []
        for strike in strikes:
            key = (expiry, strike)
            call = self.calls.get(key)
            put = self.puts.get(key)
            edge: float | None = None
            direction: Direction | None = None
            if call is not None and put is not None:
                check = parity_check(strike, call, put, future, disc)
                edge, direction = check.edge, check.direction
            step = threshold_step(self.open, key, at_ns, edge, direction, self.threshold)
            if step is None:
                continue
            opened = key in self.open
            if opened:
                self.opened_total += 1
            else:
                self.closed_total += 1
            side: Direction = step.direction  # type: ignore[assignment]
            events.append(ParityEvent(at_ns, expiry, strike, opened, step.peak, side))
        return events

"""Spot against a perpetual future: the basis after both spreads, and funding (pure, no I/O).

A perpetual never expires; funding, exchanged every interval (8 hours on most Binance
contracts), pulls its price towards the spot index. The gap a desk can take crosses both
spreads, so the deviation *after costs* is the better of the two round trips, in basis points
of the spot mid:

- the perpetual is rich: buy spot at its ask, sell the perpetual at its bid:
  ``(P_bid - S_ask) / S_mid``;
- the perpetual is cheap: sell spot at its bid, buy the perpetual at its ask:
  ``(S_bid - P_ask) / S_mid``.

The premium ``P_mid / S_mid - 1`` is what one funding interval would pay if funding closed it
(Binance's funding rate tracks this premium), so it is annualised like the funding rate: times
the intervals in a year.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal, NamedTuple

from shriven.analytics.parity import Episode, Quote, threshold_step

__all__ = [
    "BUY_PERP",
    "DEFAULT_FUNDING_INTERVAL_MS",
    "SELL_PERP",
    "BasisCheck",
    "BasisEvent",
    "BasisWatch",
    "basis_check",
    "periods_per_year",
]

SELL_PERP: Final = "sell_perp"  # and buy spot
BUY_PERP: Final = "buy_perp"  # and sell spot
BasisDirection = Literal["sell_perp", "buy_perp"]
DEFAULT_FUNDING_INTERVAL_MS: Final = 8 * 3600 * 1000
_YEAR_MS: Final = 365 * 24 * 3600 * 1000
_BPS: Final = 10_000.0


class BasisCheck(NamedTuple):
    mid_bps: float | None  # (P_mid / S_mid - 1) in basis points; None without both mids
    edge_bps: float | None  # the better round trip after both spreads; None if a side is empty
    direction: BasisDirection | None


def basis_check(spot: Quote, perp: Quote) -> BasisCheck:
    sm, pm = spot.mid, perp.mid
    if sm is None or pm is None or sm <= 0:
        return BasisCheck(None, None, None)
    mid = (pm / sm - 1.0) * _BPS
    rich = (perp.bid - spot.ask) / sm * _BPS  # type: ignore[operator]
    cheap = (spot.bid - perp.ask) / sm * _BPS  # type: ignore[operator]
    if rich >= cheap:
        return BasisCheck(mid, rich, SELL_PERP)
    return BasisCheck(mid, cheap, BUY_PERP)


def periods_per_year(interval_ms: int) -> float:
    return _YEAR_MS / interval_ms


class BasisEvent(NamedTuple):
    """A basis deviation opening (``opened``) or closing, between ``spot`` and ``perp`` (each
    ``venue:symbol``); ``edge_bps`` is its size after spreads at that instant (when closing: the
    largest it reached). The rest describe the pair at the instant: the mid premium, it
    annualised, the funding rate per interval and annualised (None: none recorded yet), the
    next funding time (ms, 0: unknown) and the interval used (ms)."""

    at_ns: int
    spot: str
    perp: str
    opened: bool
    edge_bps: float
    direction: BasisDirection
    mid_bps: float | None
    annualised: float | None
    funding_rate: float | None
    funding_annualised: float | None
    next_funding_ms: int
    interval_ms: int


@dataclass(slots=True)
class _Funding:
    rate: float | None = None
    next_ms: int = 0
    interval_ms: int = DEFAULT_FUNDING_INTERVAL_MS


@dataclass(slots=True)
class BasisWatch:
    """Which spot/perpetual pairs deviate by more than ``threshold_bps`` after both spreads, kept
    up to date quote by quote. Pairs are added with :meth:`pair`; ``set_quote`` takes the top of
    any ``venue:symbol`` (None when its book is unknown) and returns the deviations that opened
    or closed; ``set_funding`` the perpetual's recorded funding rate and next funding time."""

    threshold_bps: float
    quotes: dict[str, Quote | None] = field(default_factory=dict)
    perps_of: dict[str, list[str]] = field(default_factory=dict)  # spot -> its perpetuals
    spot_of: dict[str, str] = field(default_factory=dict)  # perpetual -> its spot
    funding: dict[str, _Funding] = field(default_factory=dict)
    open: dict[str, Episode] = field(default_factory=dict)  # by perpetual
    opened_total: int = 0
    closed_total: int = 0

    def pair(self, spot: str, perp: str) -> None:
        if perp in self.spot_of:
            return
        self.spot_of[perp] = spot
        self.perps_of.setdefault(spot, []).append(perp)
        self.funding[perp] = _Funding()

    def set_quote(self, at_ns: int, key: str, quote: Quote | None) -> list[BasisEvent]:
        self.quotes[key] = quote
        if key in self.spot_of:
            return self._check(at_ns, key)
        events: list[BasisEvent] = []
        for perp in self.perps_of.get(key, ()):
            events += self._check(at_ns, perp)
        return events

    def set_funding(self, perp: str, rate: float | None, next_ms: int) -> None:
        f = self.funding.get(perp)
        if f is None:
            return
        if next_ms and f.next_ms and next_ms > f.next_ms:
            f.interval_ms = next_ms - f.next_ms  # the venue's own interval (4 h on some)
        f.rate = rate
        if next_ms:
            f.next_ms = next_ms

    def _check(self, at_ns: int, perp: str) -> list[BasisEvent]:
        spot = self.spot_of[perp]
        s, p = self.quotes.get(spot), self.quotes.get(perp)
        check = basis_check(s, p) if s is not None and p is not None else None
        edge, direction = (check.edge_bps, check.direction) if check else (None, None)
        step = threshold_step(self.open, perp, at_ns, edge, direction, self.threshold_bps)
        if step is None:
            return []
        opened = perp in self.open
        if opened:
            self.opened_total += 1
        else:
            self.closed_total += 1
        f = self.funding[perp]
        per_year = periods_per_year(f.interval_ms)
        mid = check.mid_bps if check else None
        side: BasisDirection = step.direction  # type: ignore[assignment]
        return [
            BasisEvent(
                at_ns,
                spot,
                perp,
                opened,
                step.peak,
                side,
                mid,
                None if mid is None else mid / _BPS * per_year,
                f.rate,
                None if f.rate is None else f.rate * per_year,
                f.next_ms,
                f.interval_ms,
            )
        ]

"""Spot against perpetual basis in recorded (or live) Binance records: the feed that turns depth,
book tickers and mark prices into :class:`~shriven.analytics.basis.BasisEvent` s (pure). ``replay
arb`` runs it beside the Kite parity feed; the live pipeline runs it behind a tap
(app/basis_tap.py).

A perpetual is paired with the spot pair of the same base: a USD-M perpetual with the spot symbol
of the same name (``BTCUSDT``), a COIN-M one with the USDT spot pair (``BTCUSD_PERP`` with
``BTCUSDT``, the tether taken at one dollar). Dated contracts are left out. Each side's top comes
from its book ticker once the stream records them (the venue's own real-time top), before that
from the book the depth diffs build (the keeper's rules: no top while out of sync). A
disconnect, a gap or a daemon restart clears the tops it concerns until they are quoted again.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from typing import Final

from shriven.analytics.basis import BasisEvent, BasisWatch
from shriven.analytics.parity import Quote
from shriven.book import BookKeeper
from shriven.book.orderbook import best_prices
from shriven.events import (
    BinanceBookTicker,
    BinanceDepth,
    BinanceDepthSnapshot,
    BinanceFuturesDepth,
    BinanceFuturesDepthSnapshot,
    BinanceMarkPrice,
    Record,
    Status,
    StatusKind,
)
from shriven.feeds.binance.streams import Listing

__all__ = ["FED_TYPES", "BasisFeed", "spot_of_perpetual"]

_SPOT: Final = "binance"
_DEPTH: Final = (
    BinanceDepth, BinanceDepthSnapshot, BinanceFuturesDepth, BinanceFuturesDepthSnapshot,
)  # fmt: skip
# The record types BasisFeed.apply looks at (a tap can skip the rest before calling it)
FED_TYPES: Final = frozenset((*_DEPTH, BinanceBookTicker, BinanceMarkPrice, Status))


def spot_of_perpetual(venue: str, symbol: str, contract_type: str | None = None) -> str | None:
    """The spot symbol a perpetual is compared with; None for a dated contract or a spot venue.
    ``contract_type`` from the store's listings when it has them, else read from the name."""
    if venue == "binance-usdm":
        perpetual = contract_type == "PERPETUAL" if contract_type else "_" not in symbol
        return symbol if perpetual else None
    if venue == "binance-coinm":
        pair, _, kind = symbol.partition("_")
        perpetual = contract_type == "PERPETUAL" if contract_type else kind == "PERP"
        return pair + "T" if perpetual and pair.endswith("USD") else None
    return None


def _side(price: str, qty: str) -> float | None:
    p = float(price)
    return p if p > 0 and float(qty) > 0 else None


@dataclass(slots=True)
class BasisFeed:
    """Binance records in, basis events out. ``spots``: the spot symbols worth a book (None:
    every one seen); ``listings``: venue -> symbol -> listing (the store's table)."""

    threshold_bps: float
    listings: Mapping[str, Mapping[str, Listing]] = field(default_factory=dict)
    spots: Container[str] | None = None
    watch: BasisWatch = field(init=False)
    keeper: BookKeeper = field(default_factory=BookKeeper)
    perps: dict[str, str | None] = field(default_factory=dict)  # futures key -> spot key / None
    spot_seen: set[str] = field(default_factory=set)
    funded: set[str] = field(default_factory=set)  # perpetuals with a funding rate recorded
    _ticker_keys: set[str] = field(default_factory=set)  # sides quoted by their book ticker
    _last: dict[str, Quote | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.watch = BasisWatch(self.threshold_bps)

    def apply(self, r: Record) -> list[BasisEvent]:
        t = type(r)
        if t in _DEPTH:
            venue = getattr(r, "venue", _SPOT)
            key = f"{venue}:{r.symbol}"  # type: ignore[union-attr]
            if not self._wanted(venue, r.symbol, key) or key in self._ticker_keys:  # type: ignore[union-attr]
                return []
            self.keeper.apply(r)
            book = self.keeper.book(key)
            top = best_prices(book) if book is not None and self.keeper.is_valid(key) else None
            return self._quote(r.recv_ns, key, Quote(*top) if top is not None else None)
        if t is BinanceBookTicker:
            key = f"{r.venue}:{r.symbol}"  # type: ignore[union-attr]
            if not self._wanted(r.venue, r.symbol, key):  # type: ignore[union-attr]
                return []
            self._ticker_keys.add(key)
            quote = Quote(_side(r.bid_price, r.bid_quantity), _side(r.ask_price, r.ask_quantity))  # type: ignore[union-attr]
            return self._quote(r.recv_ns, key, quote)
        if t is BinanceMarkPrice:
            key = f"{r.venue}:{r.symbol}"  # type: ignore[union-attr]
            if self._wanted(r.venue, r.symbol, key):  # type: ignore[union-attr]
                rate = float(r.funding_rate) if r.funding_rate else None  # type: ignore[union-attr]
                if rate is not None:
                    self.funded.add(key)
                self.watch.set_funding(key, rate, r.next_funding_time)  # type: ignore[union-attr]
            return []
        if t is Status:
            return self._status(r)  # type: ignore[arg-type]
        return []

    def _wanted(self, venue: str, symbol: str, key: str) -> bool:
        if venue == _SPOT:
            if self.spots is not None and symbol not in self.spots:
                return False
            self.spot_seen.add(key)
            return True
        spot = self.perps.get(key, "")
        if spot == "":  # not seen before
            listing = self.listings.get(venue, {}).get(symbol)
            name = spot_of_perpetual(venue, symbol, listing.contract_type if listing else None)
            spot = self.perps[key] = None if name is None else f"{_SPOT}:{name}"
            if spot is not None:
                self.watch.pair(spot, key)
        return spot is not None

    def _quote(self, at_ns: int, key: str, quote: Quote | None) -> list[BasisEvent]:
        if self._last.get(key, False) == quote:  # an unchanged top changes no check
            return []
        self._last[key] = quote
        return self.watch.set_quote(at_ns, key, quote)

    def _status(self, s: Status) -> list[BasisEvent]:
        if s.venue == "system" and s.kind == StatusKind.STARTED:
            self.keeper = BookKeeper()  # a new run: new books, as the daemon starts them
            self._ticker_keys.clear()
            gone = list(self._last)
        elif s.kind == StatusKind.DISCONNECTED:
            gone = [k for k in self._last if k.startswith(s.venue + ":")]
        elif s.kind == StatusKind.GAP:
            self.keeper.apply(s)
            gone = [f"{s.venue}:{s.instrument}"]
        else:
            return []
        events: list[BasisEvent] = []
        for key in gone:
            events += self._quote(s.recv_ns, key, None)
        return events

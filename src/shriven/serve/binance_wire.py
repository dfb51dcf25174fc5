"""Binance combined-stream subscriptions and the messages each client gets. Pure: no I/O.

Streams served, per venue (``feeds.binance.venues``' table): the diff-depth stream under every
name the venue gives it (spot ``<symbol>@depth``, ``@depth@100ms``, ``@depth@1000ms``; USD-M also
``@depth@0ms``, ``@depth@250ms``, ``@depth@500ms``; COIN-M ``@depth@100ms``, ``@depth@250ms``,
``@depth@500ms``), each carrying the recorded diffs, whose update ids chain whatever the name's
interval; ``@aggTrade`` and ``@bookTicker`` on all three; ``@trade`` on spot; ``@markPrice`` (and
``@markPrice@1s``) and ``@forceOrder`` on the futures venues. A client's control messages are
answered as Binance answers them (``{"result": null, "id": 1}``, ``{"error": {...}}``); a stream
of a symbol nothing was recorded for is accepted and stays silent, as the venue does for a symbol
that does not trade.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Final

from shriven.events import (
    BinanceAggTrade,
    BinanceBookTicker,
    BinanceDepth,
    BinanceForceOrder,
    BinanceFuturesDepth,
    BinanceMarkPrice,
    BinanceTrade,
    Record,
)
from shriven.feeds.binance.venues import MARKETS
from shriven.feeds.binance.wire import (
    agg_trade_event,
    book_ticker_event,
    combined,
    depth_event,
    force_order_event,
    futures_depth_event,
    mark_price_event,
    trade_event,
)
from shriven.serve.frames import text_frame

__all__ = ["BinanceSubscriptions", "EventEncoder", "parse_streams", "served_kinds", "stream_names"]

_SYMBOL: Final = re.compile(r"^[a-z0-9_]{2,32}\Z")
# record type -> its event's JSON; and the stream kinds (besides depth's names) it goes out under
_ENCODERS: Final = {
    BinanceDepth: depth_event,
    BinanceFuturesDepth: futures_depth_event,
    BinanceTrade: trade_event,
    BinanceAggTrade: agg_trade_event,
    BinanceBookTicker: book_ticker_event,
    BinanceMarkPrice: mark_price_event,
    BinanceForceOrder: force_order_event,
}
_KIND_NAMES: Final = {
    BinanceTrade: ("trade",),
    BinanceAggTrade: ("aggTrade",),
    BinanceBookTicker: ("bookTicker",),
    BinanceMarkPrice: ("markPrice", "markPrice@1s"),
    BinanceForceOrder: ("forceOrder",),
}


class StreamError(ValueError):
    """A stream name shriven does not serve; the message says which are served."""


@cache
def _depth_names(venue: str) -> tuple[str, ...]:
    return ("depth", *(f"depth@{s}" for s in MARKETS[venue].speeds))


@cache
def served_kinds(venue: str) -> frozenset[str]:
    """What may follow ``<symbol>@`` in a stream name of ``venue``."""
    kinds = set(_depth_names(venue))
    offered = MARKETS[venue].stream_kinds
    for names in _KIND_NAMES.values():
        kinds.update(n for n in names if n.partition("@")[0] in offered)
    if venue == "binance":
        kinds.add("trade")
    return frozenset(kinds)


def parse_streams(names: list[str], venue: str = "binance") -> list[str]:
    """Checked stream names (the symbol lower-cased); raises StreamError naming the first bad
    one and what ``venue`` serves."""
    kinds = served_kinds(venue)
    out = []
    for name in names:
        symbol, at, kind = str(name).strip().partition("@")
        symbol = symbol.lower()
        if not (at and _SYMBOL.match(symbol) and kind in kinds):
            raise StreamError(
                f"shriven serves <symbol>@{'|'.join(sorted(kinds, key=str.lower))} streams on "
                f"{venue}, not {str(name)[:60]!r}"
            )
        out.append(f"{symbol}@{kind}")
    return out


def stream_names(record: Record) -> tuple[str, ...]:
    """The stream names a record is published under."""
    t = type(record)
    if t is BinanceDepth or t is BinanceFuturesDepth:
        low = record.symbol.lower()  # type: ignore[union-attr]
        venue = "binance" if t is BinanceDepth else record.venue  # type: ignore[union-attr]
        return tuple(f"{low}@{n}" for n in _depth_names(venue))
    names = _KIND_NAMES.get(t)
    if names is None:
        return ()
    low = record.symbol.lower()  # type: ignore[union-attr]
    return tuple(f"{low}@{n}" for n in names)


@dataclass(slots=True)
class BinanceSubscriptions:
    limit: int
    streams: set[str] = field(default_factory=set)
    raw: bool = False  # /ws/<stream>: events without the combined wrapper
    venue: str = "binance"

    def control(self, text: str) -> str | None:
        """Apply one client message; the JSON answer (None: close the connection)."""
        try:
            req = json.loads(text)
        except (ValueError, RecursionError):
            return json.dumps({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None})
        if not isinstance(req, dict):
            return _error(2, "Invalid request: expected an object", None)
        rid = req.get("id")
        if rid is not None and (type(rid) is not int or rid < 0) and type(rid) is not str:
            return _error(2, "Invalid request: request ID must be an unsigned integer", None)
        method = req.get("method")
        params = req.get("params", [])
        if method == "LIST_SUBSCRIPTIONS":
            return json.dumps({"result": sorted(self.streams), "id": rid})
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE"):
            return _error(
                2,
                "Invalid request: method must be one of SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS",
                rid,
            )
        if not isinstance(params, list):
            return _error(2, "Invalid request: params must be a list of stream names", rid)
        try:
            names = parse_streams(params, self.venue)
        except StreamError as exc:
            return _error(2, f"Invalid request: {exc}", rid)
        if method == "UNSUBSCRIBE":
            self.streams.difference_update(names)
        else:
            new = set(names) - self.streams
            if len(self.streams) + len(new) > self.limit:
                return _error(
                    2, f"Invalid request: at most {self.limit} streams per connection", rid
                )
            self.streams |= new
        return json.dumps({"result": None, "id": rid})


def _error(code: int, msg: str, rid: object) -> str:
    return json.dumps({"error": {"code": code, "msg": msg}, "id": rid})


class EventEncoder:
    """One record's event JSON, encoded once, wrapped (and framed) once per stream name asked
    for."""

    __slots__ = ("_data", "_frames", "_names", "_wrapped")

    def __init__(self, record: Record) -> None:
        self._names = stream_names(record)
        self._data = _ENCODERS[type(record)](record) if self._names else ""  # type: ignore[operator]
        self._wrapped: dict[str, str] = {}
        self._frames: dict[str, bytes] = {}  # stream name ("" raw) -> the message's frame

    def frame_for(self, subs: BinanceSubscriptions) -> bytes | None:
        """:meth:`message_for`'s message as a websocket text frame."""
        for name in self._names:
            if name in subs.streams:
                key = "" if subs.raw else name
                f = self._frames.get(key)
                if f is None:
                    f = self._frames[key] = text_frame(self.message_for(subs))  # type: ignore[arg-type]
                return f
        return None

    def message_for(self, subs: BinanceSubscriptions) -> str | None:
        for name in self._names:
            if name in subs.streams:
                if subs.raw:
                    return self._data
                out = self._wrapped.get(name)
                if out is None:
                    out = self._wrapped[name] = combined(name, self._data)
                return out
        return None

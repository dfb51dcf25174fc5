"""Records back to Binance's JSON: stream events and REST depth answers. Pure: no I/O.

The inverse of :mod:`shriven.feeds.binance.parse` for what it records: a ``depthUpdate`` or
``trade`` record becomes the event Binance sent (its fields in Binance's order, the recorded
price and quantity strings as they were), and a book becomes a ``/api/v3/depth`` answer.
Compact JSON, ASCII: the recorded strings are the venue's decimal strings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from shriven.events import BinanceDepth, BinanceFuturesDepth, BinanceTrade

__all__ = [
    "combined",
    "depth_answer",
    "depth_event",
    "futures_depth_event",
    "levels_json",
    "trade_event",
]


def levels_json(levels: Iterable[tuple[str, str]]) -> str:
    """``[["price","qty"],...]``: the recorded strings are decimal digits, never escaped."""
    return "[" + ",".join(f'["{p}","{q}"]' for p, q in levels) + "]"


def depth_event(d: BinanceDepth) -> str:
    return (
        f'{{"e":"depthUpdate","E":{d.event_time},"s":{json.dumps(d.symbol)},'
        f'"U":{d.first_update_id},"u":{d.last_update_id},'
        f'"b":{levels_json(d.bids)},"a":{levels_json(d.asks)}}}'
    )


def futures_depth_event(d: BinanceFuturesDepth) -> str:
    """A USD-M / COIN-M ``depthUpdate``: the spot one plus ``T`` and ``pu``, in Binance's order."""
    return (
        f'{{"e":"depthUpdate","E":{d.event_time},"T":{d.transaction_time},'
        f'"s":{json.dumps(d.symbol)},"U":{d.first_update_id},"u":{d.last_update_id},'
        f'"pu":{d.prev_update_id},"b":{levels_json(d.bids)},"a":{levels_json(d.asks)}}}'
    )


def trade_event(t: BinanceTrade) -> str:
    return (
        f'{{"e":"trade","E":{t.event_time},"s":{json.dumps(t.symbol)},"t":{t.trade_id},'
        f'"p":"{t.price}","q":"{t.quantity}","T":{t.trade_time},'
        f'"m":{"true" if t.buyer_is_maker else "false"},"M":true}}'
    )


def combined(stream: str, data: str) -> str:
    """The combined-stream wrapper (``/stream?streams=...``) around one event's JSON."""
    return f'{{"stream":{json.dumps(stream)},"data":{data}}}'


def _price(x: float) -> str:
    return f"{x:.8f}"


def depth_answer(
    last_update_id: int, bids: Iterable[tuple[float, float]], asks: Iterable[tuple[float, float]]
) -> str:
    """A ``/api/v3/depth`` body from a book's levels (best first), in Binance's 8-decimal form."""
    b = levels_json((_price(p), _price(q)) for p, q in bids)
    a = levels_json((_price(p), _price(q)) for p, q in asks)
    return f'{{"lastUpdateId":{last_update_id},"bids":{b},"asks":{a}}}'

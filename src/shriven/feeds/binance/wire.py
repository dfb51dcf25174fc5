"""Records back to Binance's JSON: stream events and REST depth answers. Pure: no I/O.

The inverse of :mod:`shriven.feeds.binance.parse` for what it records: a ``depthUpdate`` or
``trade`` record becomes the event Binance sent (its fields in Binance's order, the recorded
price and quantity strings as they were), and a book becomes a ``/api/v3/depth`` answer; the
same for the futures venues' events (depthUpdate with ``pu``, aggTrade, bookTicker,
markPriceUpdate, forceOrder) and ``/fapi/v1/depth`` / ``/dapi/v1/depth`` answers.
Compact JSON, ASCII: the recorded strings are the venue's decimal strings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from shriven.events import (
    BinanceAggTrade,
    BinanceBookTicker,
    BinanceDepth,
    BinanceForceOrder,
    BinanceFuturesDepth,
    BinanceMarkPrice,
    BinanceTrade,
)

__all__ = [
    "agg_trade_event",
    "book_ticker_event",
    "combined",
    "depth_answer",
    "depth_event",
    "force_order_event",
    "futures_depth_answer",
    "futures_depth_event",
    "levels_json",
    "mark_price_event",
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


# ---------------------------------------------------------------- the futures venues' forms
#
# Field order as Binance's USD-M and COIN-M documentation shows each event. COIN-M adds the pair
# (``ps``) to depth events and to depth answers (``pair``, with ``symbol``): a COIN-M symbol is its
# pair, ``_`` and the contract (``BTCUSD_PERP``, ``BTCUSD_250328``).


def _pair(symbol: str) -> str:
    return symbol.partition("_")[0]


def futures_depth_event(d: BinanceFuturesDepth) -> str:
    pair = f',"ps":{json.dumps(_pair(d.symbol))}' if d.venue == "binance-coinm" else ""
    return (
        f'{{"e":"depthUpdate","E":{d.event_time},"T":{d.transaction_time},'
        f'"s":{json.dumps(d.symbol)}{pair},"U":{d.first_update_id},"u":{d.last_update_id},'
        f'"pu":{d.prev_update_id},"b":{levels_json(d.bids)},"a":{levels_json(d.asks)}}}'
    )


def agg_trade_event(t: BinanceAggTrade) -> str:
    """Spot names the symbol before the id and ends with ``"M":true`` (ignored by every
    client); the futures venues put the id first and send no ``M``."""
    sym = f'"s":{json.dumps(t.symbol)}'
    head = f'{sym},"a":{t.agg_trade_id}' if t.venue == "binance" else f'"a":{t.agg_trade_id},{sym}'
    tail = ',"M":true' if t.venue == "binance" else ""
    return (
        f'{{"e":"aggTrade","E":{t.event_time},{head},'
        f'"p":"{t.price}","q":"{t.quantity}","f":{t.first_trade_id},"l":{t.last_trade_id},'
        f'"T":{t.trade_time},"m":{"true" if t.buyer_is_maker else "false"}{tail}}}'
    )


def book_ticker_event(b: BinanceBookTicker) -> str:
    """Spot's bookTicker has no event type or times; the futures' has both."""
    body = (
        f'"u":{b.update_id},"s":{json.dumps(b.symbol)},"b":"{b.bid_price}",'
        f'"B":"{b.bid_quantity}","a":"{b.ask_price}","A":"{b.ask_quantity}"'
    )
    if b.venue == "binance":
        return "{" + body + "}"
    return f'{{"e":"bookTicker",{body},"T":{b.transaction_time},"E":{b.event_time}}}'


def mark_price_event(m: BinanceMarkPrice) -> str:
    """A field recorded empty because the message lacked it (``i``, ``P``) is left out again;
    ``r`` is sent as recorded (COIN-M's delivery contracts send ``""``)."""
    index = f',"i":"{m.index_price}"' if m.index_price else ""
    settle = f',"P":"{m.estimated_settle_price}"' if m.estimated_settle_price else ""
    return (
        f'{{"e":"markPriceUpdate","E":{m.event_time},"s":{json.dumps(m.symbol)},'
        f'"p":"{m.mark_price}"{index}{settle},"r":"{m.funding_rate}","T":{m.next_funding_time}}}'
    )


def force_order_event(f: BinanceForceOrder) -> str:
    return (
        f'{{"e":"forceOrder","E":{f.event_time},"o":{{"s":{json.dumps(f.symbol)},'
        f'"S":"{f.side}","o":"{f.order_type}","f":"{f.time_in_force}","q":"{f.quantity}",'
        f'"p":"{f.price}","ap":"{f.average_price}","X":"{f.status}",'
        f'"l":"{f.last_filled_quantity}","z":"{f.filled_quantity}","T":{f.trade_time}}}}}'
    )


def futures_depth_answer(
    venue: str,
    symbol: str,
    last_update_id: int,
    event_time: int,
    transaction_time: int,
    bids: Iterable[tuple[float, float]],
    asks: Iterable[tuple[float, float]],
) -> str:
    """A ``/fapi/v1/depth`` (``/dapi/v1/depth``: with ``symbol`` and ``pair``) body."""
    b = levels_json((_price(p), _price(q)) for p, q in bids)
    a = levels_json((_price(p), _price(q)) for p, q in asks)
    names = (
        f'"symbol":{json.dumps(symbol)},"pair":{json.dumps(_pair(symbol))},'
        if venue == "binance-coinm"
        else ""
    )
    return (
        f'{{"lastUpdateId":{last_update_id},{names}"E":{event_time},"T":{transaction_time},'
        f'"bids":{b},"asks":{a}}}'
    )

"""Records as rows of venue values: the one place that decides how each field is shown.

Prices are exact decimal text: Kite wire integers divided by :func:`kite_price_divisor` (``2450005``
with divisor 100 is ``"24500.05"``), Binance strings as sent. Book snapshot levels are floats
(derived data). ``time`` is the receive time in the output zone; venue timestamps stay as the
venue gave them (Kite epoch seconds, Binance epoch milliseconds).
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Final
from zoneinfo import ZoneInfo

from shriven.events import (
    BinanceAggTrade,
    BinanceBookTicker,
    BinanceDepth,
    BinanceDepthSnapshot,
    BinanceForceOrder,
    BinanceFuturesDepth,
    BinanceFuturesDepthSnapshot,
    BinanceMarkPrice,
    BinanceOpenInterest,
    BinanceTrade,
    BookSnapshot,
    KiteTick,
    Record,
    Status,
    kite_price_divisor,
    stream_of,
)
from shriven.replay.times import format_ns

__all__ = [
    "COLUMNS",
    "TYPE_NAMES",
    "book_price",
    "book_quantity",
    "kite_price",
    "price_decimals",
    "record_row",
]

# Binance spot sends every price and quantity with 8 decimals ("60000.01000000").
BINANCE_DECIMALS: Final = 8

TYPE_NAMES: Final[dict[type, str]] = {
    KiteTick: "kite_tick",
    BinanceTrade: "binance_trade",
    BinanceDepth: "binance_depth",
    BinanceDepthSnapshot: "binance_depth_snapshot",
    BookSnapshot: "book_snapshot",
    Status: "status",
    BinanceFuturesDepth: "binance_futures_depth",
    BinanceFuturesDepthSnapshot: "binance_futures_depth_snapshot",
    BinanceAggTrade: "binance_agg_trade",
    BinanceBookTicker: "binance_book_ticker",
    BinanceMarkPrice: "binance_mark_price",
    BinanceForceOrder: "binance_force_order",
    BinanceOpenInterest: "binance_open_interest",
}

# Every column a row can have, in output order (CSV header, Parquet schema). A row holds only
# the columns its record type has.
COLUMNS: Final[tuple[str, ...]] = (
    "time",
    "recv_ns",
    "type",
    "stream",
    "seq",
    "venue",
    "instrument",
    # Kite tick
    "instrument_token",
    "mode",
    "last_price",
    "last_traded_quantity",
    "average_traded_price",
    "volume_traded",
    "total_buy_quantity",
    "total_sell_quantity",
    "open",
    "high",
    "low",
    "close",
    "last_trade_time",
    "oi",
    "oi_day_high",
    "oi_day_low",
    "exchange_timestamp",
    "change",
    # Binance
    "symbol",
    "trade_id",
    "price",
    "quantity",
    "trade_time",
    "event_time",
    "buyer_is_maker",
    "first_update_id",
    "last_update_id",
    # book snapshot
    "update_id",
    # levels: venue levels (Kite, Binance) and derived book levels (snapshots)
    "bids",
    "asks",
    "book_bids",
    "book_asks",
    # status
    "kind",
    "detail",
    # added with the futures venues (record types 7..13)
    "prev_update_id",
    "transaction_time",
    "agg_trade_id",
    "first_trade_id",
    "last_trade_id",
    "bid_price",
    "bid_quantity",
    "ask_price",
    "ask_quantity",
    "mark_price",
    "index_price",
    "estimated_settle_price",
    "funding_rate",
    "next_funding_time",
    "side",
    "order_type",
    "time_in_force",
    "average_price",
    "order_status",
    "last_filled_quantity",
    "filled_quantity",
    "open_interest",
)


def kite_price(wire: int, divisor: int) -> str:
    """Exact decimal text of a Kite wire price: ``kite_price(2450005, 100) == "24500.05"``."""
    scale = len(str(divisor)) - 1
    sign = "-" if wire < 0 else ""
    whole, frac = divmod(abs(wire), divisor)
    return f"{sign}{whole}.{frac:0{scale}d}" if scale else f"{sign}{whole}"


def price_decimals(venue: str, instrument: str) -> int:
    """Decimals of the venue's price text for an instrument: a Kite token's wire divisor (2,
    4 or 7), Binance's 8."""
    if venue == "kite" and instrument.isdigit():
        return len(str(kite_price_divisor(int(instrument)))) - 1
    return BINANCE_DECIMALS


def book_price(venue: str, instrument: str, price: float) -> str:
    """A derived book's float price as the venue writes it (``24999.90``, ``60000.00000000``)."""
    return f"{price:.{price_decimals(venue, instrument)}f}"


def book_quantity(venue: str, quantity: float) -> str:
    """A derived book's float quantity as the venue writes it: Kite's are whole (``1075``),
    Binance's have 8 decimals."""
    if venue == "kite" and float(quantity).is_integer():
        return str(int(quantity))
    return f"{quantity:.{BINANCE_DECIMALS}f}"


def record_row(record: Record, zone: ZoneInfo) -> dict[str, object]:
    """The record as an ordered dict of JSON-ready values (see the module docstring)."""
    t = type(record)
    row: dict[str, object] = {
        "time": format_ns(record.recv_ns, zone),
        "recv_ns": record.recv_ns,
        "type": TYPE_NAMES[t],
        "stream": stream_of(record),
        "seq": record.seq,
    }
    if t is KiteTick:
        r: KiteTick = record  # type: ignore[assignment]
        div = kite_price_divisor(r.instrument_token)
        row["venue"] = "kite"
        row["instrument"] = str(r.instrument_token)
        row["instrument_token"] = r.instrument_token
        row["mode"] = r.mode
        row["last_price"] = kite_price(r.last_price, div)
        row["last_traded_quantity"] = r.last_traded_quantity
        row["average_traded_price"] = kite_price(r.average_traded_price, div)
        row["volume_traded"] = r.volume_traded
        row["total_buy_quantity"] = r.total_buy_quantity
        row["total_sell_quantity"] = r.total_sell_quantity
        row["open"] = kite_price(r.open, div)
        row["high"] = kite_price(r.high, div)
        row["low"] = kite_price(r.low, div)
        row["close"] = kite_price(r.close, div)
        row["last_trade_time"] = r.last_trade_time
        row["oi"] = r.oi
        row["oi_day_high"] = r.oi_day_high
        row["oi_day_low"] = r.oi_day_low
        row["exchange_timestamp"] = r.exchange_timestamp
        row["change"] = r.change
        row["bids"] = [[kite_price(p, div), q, o] for p, q, o in r.bids]
        row["asks"] = [[kite_price(p, div), q, o] for p, q, o in r.asks]
    elif t is BinanceTrade:
        b: BinanceTrade = record  # type: ignore[assignment]
        row["venue"] = "binance"
        row["instrument"] = b.symbol
        row["symbol"] = b.symbol
        row["trade_id"] = b.trade_id
        row["price"] = b.price
        row["quantity"] = b.quantity
        row["trade_time"] = b.trade_time
        row["event_time"] = b.event_time
        row["buyer_is_maker"] = b.buyer_is_maker
    elif t is BinanceDepth:
        d: BinanceDepth = record  # type: ignore[assignment]
        row["venue"] = "binance"
        row["instrument"] = d.symbol
        row["symbol"] = d.symbol
        row["event_time"] = d.event_time
        row["first_update_id"] = d.first_update_id
        row["last_update_id"] = d.last_update_id
        row["bids"] = [[p, q] for p, q in d.bids]
        row["asks"] = [[p, q] for p, q in d.asks]
    elif t is BinanceDepthSnapshot:
        s: BinanceDepthSnapshot = record  # type: ignore[assignment]
        row["venue"] = "binance"
        row["instrument"] = s.symbol
        row["symbol"] = s.symbol
        row["last_update_id"] = s.last_update_id
        row["bids"] = [[p, q] for p, q in s.bids]
        row["asks"] = [[p, q] for p, q in s.asks]
    elif t is BookSnapshot:
        k: BookSnapshot = record  # type: ignore[assignment]
        row["venue"] = k.venue
        row["instrument"] = k.instrument
        row["update_id"] = k.update_id
        row["book_bids"] = [[p, q] for p, q in k.bids]
        row["book_asks"] = [[p, q] for p, q in k.asks]
    elif t in _VENUE_ROWS:
        _venue_row(record, row, _VENUE_ROWS[t])
    else:
        st: Status = record  # type: ignore[assignment]
        row["venue"] = st.venue
        row["instrument"] = st.instrument
        row["kind"] = st.kind
        row["detail"] = st.detail
    return row


# ---------------------------------------------------------------- the futures-era types

# (column, attribute) after venue, instrument and symbol, in output order. A table rather than a
# function per type: the rows differ only in fields.
_FIELDS: Final[dict[type, tuple[tuple[str, str], ...]]] = {
    BinanceFuturesDepth: (
        ("event_time", "event_time"),
        ("transaction_time", "transaction_time"),
        ("first_update_id", "first_update_id"),
        ("last_update_id", "last_update_id"),
        ("prev_update_id", "prev_update_id"),
    ),
    BinanceFuturesDepthSnapshot: (
        ("event_time", "event_time"),
        ("transaction_time", "transaction_time"),
        ("last_update_id", "last_update_id"),
    ),
    BinanceAggTrade: (
        ("agg_trade_id", "agg_trade_id"),
        ("price", "price"),
        ("quantity", "quantity"),
        ("first_trade_id", "first_trade_id"),
        ("last_trade_id", "last_trade_id"),
        ("trade_time", "trade_time"),
        ("event_time", "event_time"),
        ("buyer_is_maker", "buyer_is_maker"),
    ),
    BinanceBookTicker: (
        ("update_id", "update_id"),
        ("bid_price", "bid_price"),
        ("bid_quantity", "bid_quantity"),
        ("ask_price", "ask_price"),
        ("ask_quantity", "ask_quantity"),
        ("event_time", "event_time"),
        ("transaction_time", "transaction_time"),
    ),
    BinanceMarkPrice: (
        ("event_time", "event_time"),
        ("mark_price", "mark_price"),
        ("index_price", "index_price"),
        ("estimated_settle_price", "estimated_settle_price"),
        ("funding_rate", "funding_rate"),
        ("next_funding_time", "next_funding_time"),
    ),
    BinanceForceOrder: (
        ("event_time", "event_time"),
        ("side", "side"),
        ("order_type", "order_type"),
        ("time_in_force", "time_in_force"),
        ("quantity", "quantity"),
        ("price", "price"),
        ("average_price", "average_price"),
        ("order_status", "status"),
        ("last_filled_quantity", "last_filled_quantity"),
        ("filled_quantity", "filled_quantity"),
        ("trade_time", "trade_time"),
    ),
    BinanceOpenInterest: (("open_interest", "open_interest"), ("event_time", "time")),
}
# These end with their bids and asks.
_WITH_LEVELS: Final = frozenset({BinanceFuturesDepth, BinanceFuturesDepthSnapshot})


def _reader(t: type) -> tuple[tuple[str, ...], Callable[[Record], tuple[object, ...]], bool]:
    fields = _FIELDS[t]
    columns = tuple(c for c, _ in fields)
    get = attrgetter(*(a for _, a in fields))
    # attrgetter of several names gives a tuple (C speed: as fast as the per-type functions were)
    read = get if len(fields) > 1 else lambda r: (get(r),)
    return columns, read, t in _WITH_LEVELS


_VENUE_ROWS: Final = {t: _reader(t) for t in _FIELDS}


def _venue_row(
    r: Record,
    row: dict[str, object],
    reader: tuple[tuple[str, ...], Callable[[Record], tuple[object, ...]], bool],
) -> None:
    columns, read, levels = reader
    row["venue"] = r.venue  # type: ignore[union-attr]
    row["instrument"] = row["symbol"] = r.symbol  # type: ignore[union-attr]
    row.update(zip(columns, read(r), strict=True))
    if levels:
        row["bids"] = [[p, q] for p, q in r.bids]  # type: ignore[union-attr]
        row["asks"] = [[p, q] for p, q in r.asks]  # type: ignore[union-attr]

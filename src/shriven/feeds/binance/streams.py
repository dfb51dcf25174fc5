"""Binance futures messages, and the streams every Binance venue shares, -> records. Pure: no I/O.

Spot's depth diffs and trades stay in :mod:`shriven.feeds.binance.parse`; this module reads what
the futures venues (USD-M ``fstream``/``fapi``, COIN-M ``dstream``/``dapi``) send and the streams
added with them on any venue: futures ``depthUpdate`` (with ``pu``), ``aggTrade``, ``bookTicker``,
``markPriceUpdate``, ``forceOrder``, and the REST answers for futures depth snapshots, open
interest and ``exchangeInfo``. The checks are spot's (typed msgspec schemas; integers in
0..2**63-1; prices and quantities unsigned decimal text; symbols upper case letters, digits and
``_`` as in ``BTCUSD_PERP``); a funding rate may be signed, and empty for a delivery contract.
A message that fails raises :class:`BinanceMessageError` with one of ``parse.ERROR_KINDS``.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from typing import Annotated, Final

import msgspec

from shriven.events import (
    BinanceAggTrade,
    BinanceBookTicker,
    BinanceForceOrder,
    BinanceFuturesDepth,
    BinanceFuturesDepthSnapshot,
    BinanceMarkPrice,
    BinanceOpenInterest,
    Record,
)
from shriven.feeds.binance.parse import (
    DECIMAL_PATTERN,
    INT64_MAX,
    BinanceMessageError,
    _classify,
    _levels,
    _sample,
    parse_message,
    read_snapshot,
)

__all__ = [
    "FUTURES_DEPTH_SUFFIXES",
    "Listing",
    "VenueInfo",
    "parse_exchange_info",
    "parse_futures_snapshot",
    "parse_open_interest",
    "parse_venue_message",
]

# fstream/dstream name the 250 ms diff stream without a suffix; USD-M also offers @0ms.
FUTURES_DEPTH_SUFFIXES: Final = frozenset({"@depth", "@depth@0ms", "@depth@100ms", "@depth@500ms"})
SIGNED_DECIMAL: Final = r"^-?[0-9]{1,20}(\.[0-9]{1,20})?\Z"

Int64 = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
Decimal = Annotated[str, msgspec.Meta(pattern=DECIMAL_PATTERN)]
Symbol = Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9_]{1,32}\Z")]
Word = Annotated[str, msgspec.Meta(pattern=r"^[A-Z_]{1,32}\Z")]
FundingRate = Annotated[str, msgspec.Meta(pattern=r"^(-?[0-9]{1,20}(\.[0-9]{1,20})?)?\Z")]
OptionalDecimal = Annotated[str, msgspec.Meta(pattern=r"^([0-9]{1,20}(\.[0-9]{1,20})?)?\Z")]


class _Wrapper(msgspec.Struct):
    stream: Annotated[str, msgspec.Meta(max_length=128)]
    data: msgspec.Raw


class _Depth(msgspec.Struct):
    e: str
    E: Int64
    s: Symbol
    U: Int64
    u: Int64
    pu: Int64
    b: msgspec.Raw
    a: msgspec.Raw
    T: Int64 = 0


class _AggTrade(msgspec.Struct):
    e: str
    E: Int64
    s: Symbol
    a: Int64
    p: Decimal
    q: Decimal
    f: Int64
    l: Int64  # noqa: E741 (Binance's name)
    T: Int64
    m: bool


class _BookTicker(msgspec.Struct):
    u: Int64
    s: Symbol
    b: Decimal
    B: Decimal
    a: Decimal
    A: Decimal
    e: str = "bookTicker"  # spot's payload has no event type
    E: Int64 = 0
    T: Int64 = 0


class _MarkPrice(msgspec.Struct):
    e: str
    E: Int64
    s: Symbol
    p: Decimal
    r: FundingRate
    T: Int64
    # Documented on both venues, but recorded as "" (never made up) if a message lacks one.
    P: OptionalDecimal = ""
    i: OptionalDecimal = ""


class _Order(msgspec.Struct):
    s: Symbol
    S: Word
    o: Word
    f: Word
    q: Decimal
    p: Decimal
    ap: Decimal
    X: Word
    l: Decimal  # noqa: E741 (Binance's name)
    z: Decimal
    T: Int64


class _ForceOrder(msgspec.Struct):
    e: str
    E: Int64
    o: _Order


class _OpenInterest(msgspec.Struct):
    symbol: Symbol
    openInterest: Decimal
    time: Int64


_wrapper = msgspec.json.Decoder(_Wrapper).decode
_depth = msgspec.json.Decoder(_Depth).decode
_agg = msgspec.json.Decoder(_AggTrade).decode
_ticker = msgspec.json.Decoder(_BookTicker).decode
_mark = msgspec.json.Decoder(_MarkPrice).decode
_force = msgspec.json.Decoder(_ForceOrder).decode
_open_interest = msgspec.json.Decoder(_OpenInterest).decode
_DecodeError = msgspec.DecodeError

# stream kind (the name after "<symbol>@", speed suffix cut) -> (decoder, event type, error kind)
_KINDS: Final = {
    "depth": (_depth, "depthUpdate", "bad_depthUpdate"),
    "aggTrade": (_agg, "aggTrade", "bad_aggTrade"),
    "bookTicker": (_ticker, "bookTicker", "bad_bookTicker"),
    "markPrice": (_mark, "markPriceUpdate", "bad_markPriceUpdate"),
    "forceOrder": (_force, "forceOrder", "bad_forceOrder"),
}
_SPOT_FALLBACK: Final = frozenset({"unexpected_aggTrade", "unexpected_bookTicker"})


def _stream_kind(stream: str, venue: str) -> tuple[str, str] | None:
    """``(symbol in lower case, kind)`` of a stream name we subscribe to, else None."""
    low, _, rest = stream.partition("@")
    if rest.startswith("depth"):
        if venue == "binance" or "@" + rest not in FUTURES_DEPTH_SUFFIXES:
            return None
        return low, "depth"
    if rest in ("markPrice", "markPrice@1s"):
        return low, "markPrice"
    if rest in ("aggTrade", "bookTicker", "forceOrder"):
        return low, rest
    return None


def parse_venue_message(
    raw: bytes | str,
    recv_ns: int,
    venue: str,
    seq: int = 0,
    symbols: Container[str] | None = None,
) -> Record | None:
    """One combined-stream message of ``venue`` as a record, or None for a request's answer.
    Spot's depth diffs and trades go through :func:`parse.parse_message`."""
    if venue == "binance":
        try:
            return parse_message(raw, recv_ns, seq, symbols)
        except BinanceMessageError as exc:
            if exc.kind not in _SPOT_FALLBACK:
                raise
    try:
        msg = _wrapper(raw)
    except (_DecodeError, UnicodeError, RecursionError):
        bare = _bare(raw, venue)  # a raw /ws/<stream> payload, no combined-stream wrapper
        if bare is None:
            problem = _classify(raw)
            if problem is None:
                return None
            raise problem from None
        msg = bare
    named = _stream_kind(msg.stream, venue)
    if named is None:
        problem = _classify(raw)
        if problem is None:
            return None
        raise problem
    low, kind = named
    decode, event, bad = _KINDS[kind]
    try:
        data = decode(msg.data)
    except (_DecodeError, UnicodeError, RecursionError):
        raise BinanceMessageError(bad, _sample(raw), "missing or bad field") from None
    symbol = data.o.s if kind == "forceOrder" else data.s
    if data.e != event or symbol.lower() != low:
        raise BinanceMessageError(
            "stream_mismatch", _sample(raw), "stream name disagrees with the payload"
        )
    if symbols is not None and symbol not in symbols:
        raise BinanceMessageError("unknown_symbol", _sample(raw), "symbol not subscribed")
    if kind == "depth":
        bids = _levels(data.b)
        asks = _levels(data.a)
        if bids is None or asks is None:
            raise BinanceMessageError("bad_depthUpdate", _sample(raw), "bad price level")
        return BinanceFuturesDepth(
            recv_ns, seq, venue, symbol, data.U, data.u, data.pu, data.E, data.T, bids, asks
        )
    if kind == "aggTrade":
        return BinanceAggTrade(
            recv_ns, seq, venue, symbol, data.a, data.p, data.q, data.f, data.l, data.T,
            data.E, data.m,
        )  # fmt: skip
    if kind == "bookTicker":
        return BinanceBookTicker(
            recv_ns, seq, venue, symbol, data.u, data.b, data.B, data.a, data.A, data.E, data.T
        )
    if kind == "markPrice":
        return BinanceMarkPrice(
            recv_ns, seq, venue, symbol, data.E, data.p, data.i, data.P, data.r, data.T
        )
    o = data.o
    return BinanceForceOrder(
        recv_ns, seq, venue, symbol, data.E, o.S, o.o, o.f, o.q, o.p, o.ap, o.X, o.l, o.z, o.T
    )


class _Event(msgspec.Struct):
    e: str = ""
    s: str = ""
    o: dict[str, object] | None = None


_event = msgspec.json.Decoder(_Event).decode
_STREAM_OF_EVENT: Final = {
    "depthUpdate": "depth@100ms",
    "aggTrade": "aggTrade",
    "bookTicker": "bookTicker",
    "markPriceUpdate": "markPrice",
    "forceOrder": "forceOrder",
}


def _bare(raw: bytes | str, venue: str) -> _Wrapper | None:
    """A payload sent without the wrapper, as the stream it would have been named by (from its
    event type and symbol); None when it is not one of our events."""
    try:
        ev = _event(raw)
    except (_DecodeError, UnicodeError, RecursionError):
        return None
    suffix = _STREAM_OF_EVENT.get(ev.e)
    if suffix is None or (venue == "binance" and ev.e == "depthUpdate"):
        return None
    symbol = ev.s
    if ev.e == "forceOrder" and isinstance(ev.o, dict):
        symbol = str(ev.o.get("s", ""))
    if not symbol:
        return None
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    return _Wrapper(f"{symbol.lower()}@{suffix}", msgspec.Raw(data))


def parse_futures_snapshot(
    body: bytes | str, venue: str, symbol: str, recv_ns: int, seq: int = 0
) -> BinanceFuturesDepthSnapshot:
    """The ``GET /fapi/v1/depth`` (or ``/dapi/v1/depth``) answer as a record."""
    last_id, event_time, transaction_time, bids, asks = read_snapshot(body)
    return BinanceFuturesDepthSnapshot(
        recv_ns, seq, venue, symbol, last_id, event_time, transaction_time, bids, asks
    )


def parse_open_interest(
    body: bytes | str, venue: str, symbol: str, recv_ns: int, seq: int = 0
) -> BinanceOpenInterest:
    """The ``GET /fapi/v1/openInterest`` (or ``/dapi/v1/openInterest``) answer as a record."""
    try:
        msg = _open_interest(body)
    except (_DecodeError, UnicodeError, RecursionError):
        raise BinanceMessageError("bad_openInterest", _sample(body), "fails the schema") from None
    if msg.symbol != symbol:
        raise BinanceMessageError("bad_openInterest", _sample(body), "answer for another symbol")
    return BinanceOpenInterest(recv_ns, seq, venue, symbol, msg.openInterest, msg.time)


# ---------------------------------------------------------------- exchangeInfo


@dataclass(frozen=True, slots=True)
class Listing:
    """One symbol of a venue's ``exchangeInfo``: what replay needs to name and scale it."""

    symbol: str
    status: str  # TRADING, DELIVERING, DELIVERED, ... (COIN-M's contractStatus)
    contract_type: str  # PERPETUAL, CURRENT_QUARTER, NEXT_QUARTER, ...; "" on spot
    pair: str  # the underlying pair ("BTCUSD" of BTCUSD_PERP); the symbol on spot
    delivery_date: int  # ms; 0 on spot
    tick_size: str  # PRICE_FILTER tickSize
    lot_size: str  # LOT_SIZE stepSize
    contract_size: int  # COIN-M: USD per contract; 0 elsewhere


@dataclass(frozen=True, slots=True)
class VenueInfo:
    listings: dict[str, Listing]
    weight_per_minute: int  # REQUEST_WEIGHT per 1 MINUTE (0 when the answer names none)


class _Filter(msgspec.Struct):
    filterType: str
    tickSize: str = ""
    stepSize: str = ""


class _Symbol(msgspec.Struct):
    symbol: Symbol
    filters: list[_Filter]
    status: str = ""
    contractStatus: str = ""
    contractType: str = ""
    pair: str = ""
    deliveryDate: Int64 = 0
    contractSize: Int64 = 0


class _RateLimit(msgspec.Struct):
    rateLimitType: str
    interval: str
    intervalNum: int
    limit: int


class _ExchangeInfo(msgspec.Struct):
    symbols: list[_Symbol]
    rateLimits: list[_RateLimit] = []


_exchange_info = msgspec.json.Decoder(_ExchangeInfo).decode


def parse_exchange_info(body: bytes | str) -> VenueInfo:
    """A venue's ``exchangeInfo`` answer: its listings by symbol and its REST weight limit."""
    try:
        msg = _exchange_info(body)
    except (_DecodeError, UnicodeError, RecursionError):
        raise BinanceMessageError("bad_exchangeInfo", _sample(body), "fails the schema") from None
    listings: dict[str, Listing] = {}
    for s in msg.symbols:
        filters = {f.filterType: f for f in s.filters}
        price = filters.get("PRICE_FILTER")
        lot = filters.get("LOT_SIZE")
        listings[s.symbol] = Listing(
            symbol=s.symbol,
            status=s.status or s.contractStatus,
            contract_type=s.contractType,
            pair=s.pair or s.symbol,
            delivery_date=s.deliveryDate,
            tick_size=price.tickSize if price else "",
            lot_size=lot.stepSize if lot else "",
            contract_size=s.contractSize,
        )
    weight = next(
        (
            r.limit
            for r in msg.rateLimits
            if r.rateLimitType == "REQUEST_WEIGHT" and r.interval == "MINUTE" and r.intervalNum == 1
        ),
        0,
    )
    return VenueInfo(listings, weight)

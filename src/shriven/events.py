"""Record types that flow through the queue and into the WAL, and their msgpack codec.

Every record carries ``recv_ns`` (local receive time, integer nanoseconds since the epoch) and
``seq`` (a per-stream sequence number; a stream is one venue's feed, see :func:`stream_of`).

Venue values are kept exactly as the venue sent them: Kite prices are the integers on the wire
(divide by :func:`kite_price_divisor` of the token for rupees), Binance prices and quantities are
the decimal strings from the JSON. Book snapshots are derived data and hold floats.

Wire form of one record: a msgpack array ``[type, version, recv_ns, seq, field...]``. A frame
payload is a msgpack array of such arrays. Every field of layout 1 is required; a field added
since (``KiteTick.change``) may be missing and reads as its default, so stores written before it
stay readable. Decoders ignore trailing fields they do not know. A record whose layout version is
not 1, that is shorter than layout 1, or whose strings are not msgpack ``str`` is refused
(:class:`RecordDecodeError`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from operator import itemgetter
from typing import ClassVar, Final

import msgpack

__all__ = [
    "BINANCE_VENUES",
    "DECODE_ACCELERATED",
    "FUTURES_VENUES",
    "STREAM_OF_TYPE",
    "VENUE_SYMBOL_TYPES",
    "WIRE_BINANCE_SYMBOL",
    "WIRE_KITE_TOKEN",
    "WIRE_RECV_NS",
    "WIRE_STATUS_INSTRUMENT",
    "WIRE_STATUS_KIND",
    "WIRE_TYPE",
    "WIRE_VENUE",
    "WIRE_VENUE_SYMBOL",
    "BinanceAggTrade",
    "BinanceBookTicker",
    "BinanceDepth",
    "BinanceDepthSnapshot",
    "BinanceForceOrder",
    "BinanceFuturesDepth",
    "BinanceFuturesDepthSnapshot",
    "BinanceMarkPrice",
    "BinanceOpenInterest",
    "BinanceTrade",
    "BookSnapshot",
    "DepthLevels",
    "KiteTick",
    "Record",
    "SeqCounter",
    "Status",
    "StatusKind",
    "decode_batch",
    "depth_from_levels",
    "depth_levels",
    "encode_batch",
    "instrument_key",
    "kite_depth_floats",
    "kite_packet",
    "kite_price_divisor",
    "now_ns",
    "py_encode_batch",
    "stream_of",
    "wire_is_start",
    "wire_stream",
]

# Kite exchange segment codes (low byte of the instrument token).
KITE_SEGMENT_NSE: Final = 1
KITE_SEGMENT_NFO: Final = 2
KITE_SEGMENT_CDS: Final = 3
KITE_SEGMENT_BSE: Final = 4
KITE_SEGMENT_BFO: Final = 5
KITE_SEGMENT_BCD: Final = 6
KITE_SEGMENT_MCX: Final = 7
KITE_SEGMENT_MCXSX: Final = 8
KITE_SEGMENT_INDICES: Final = 9
# NCO is 12 on the wire: kiteconnect's KiteTicker.EXCHANGE_MAP (the official client) says so.
KITE_SEGMENT_NCO: Final = 12

KITE_MODES: Final = ("ltp", "quote", "full")
_KITE_MODE_CODE: Final = {m: i for i, m in enumerate(KITE_MODES)}
_KITE_MODE_NAME: Final = dict(enumerate(KITE_MODES))  # a dict: -1 is no mode (KITE_MODES[-1] is)


def kite_price_divisor(instrument_token: int) -> int:
    """Integer divisor that turns a Kite wire price for this token into rupees (or the quote
    currency): 10^7 for currency derivatives, 10^4 for BSE currency and NCO, 100 elsewhere."""
    segment = instrument_token & 0xFF
    if segment == KITE_SEGMENT_CDS:
        return 10_000_000
    if segment in (KITE_SEGMENT_BCD, KITE_SEGMENT_NCO):
        return 10_000
    return 100


Level3 = tuple[int, int, int]  # Kite depth level: (price, quantity, orders), price in wire units
StrLevel = tuple[str, str]  # Binance level: (price, quantity) exactly as sent
FloatLevel = tuple[float, float]  # derived book level: (price, quantity)


class SeqCounter:
    """Per-stream sequence numbers: one counter per stream, starting at 1."""

    __slots__ = ("value",)

    def __init__(self, start: int = 0) -> None:
        self.value = start

    def next(self) -> int:
        self.value += 1
        return self.value


# The receive clock every record is stamped with: wall-clock ns since the epoch.
now_ns = time.time_ns


@dataclass(slots=True)
class KiteTick:
    """One Kite ticker packet. Field names follow kiteconnect's KiteTicker tick dicts."""

    recv_ns: int
    seq: int
    instrument_token: int
    mode: str  # "ltp" | "quote" | "full"
    last_price: int
    last_traded_quantity: int = 0
    average_traded_price: int = 0
    volume_traded: int = 0
    total_buy_quantity: int = 0
    total_sell_quantity: int = 0
    open: int = 0
    high: int = 0
    low: int = 0
    close: int = 0
    last_trade_time: int = 0  # epoch seconds; 0 when the packet has none
    oi: int = 0
    oi_day_high: int = 0
    oi_day_low: int = 0
    exchange_timestamp: int = 0  # epoch seconds; 0 when the packet has none
    bids: tuple[Level3, ...] = ()  # best first
    asks: tuple[Level3, ...] = ()  # best first
    # the index packets' signed `change` word (bytes 24..27 of the 28/32-byte packets), as sent;
    # 0 for other packets and in records written before it was stored. kiteconnect does not read
    # it: it yields a percent change computed from last_price and close instead.
    change: int = 0

    TYPE: ClassVar[int] = 1


# With the optional C extension, the Kite parser returns full ticks *held* as their 184-byte
# packet: a field is decoded (all at once, into the ordinary slots) only when first read or set,
# and the WAL writes the tick's wire form straight from the packet. The recorder reads only the
# token and mode of most ticks, so this saves ~60 objects a tick (see shriven/_kitetick.c).
try:
    from shriven import _kitetick
except ImportError:  # not built (no C compiler): every tick is decoded when parsed
    _kitetick = None  # type: ignore[assignment]
else:
    # the plain slot descriptors, before install replaces them: shriven._records fills a
    # KiteTick read from the WAL through them (such a tick holds no packet)
    _KITE_MEMBER_SLOTS: Final = {name: KiteTick.__dict__[name] for name in KiteTick.__slots__}
    try:
        _kitetick.install(KiteTick, tuple(f.name for f in fields(KiteTick)), KITE_MODES)
    except (TypeError, ValueError):  # KiteTick's fields are not the 22 the C code knows
        _kitetick = None  # type: ignore[assignment]  # tests/test_accelerators_built.py fails


def kite_packet(tick: object) -> bytes | None:
    """The full-mode packet a held tick still holds undecoded, else None (a tick built from its
    fields, read back from the WAL, or one whose fields were read or set since)."""
    return None


def kite_depth_floats(
    tick: KiteTick, divisor: int
) -> tuple[list[FloatLevel], list[FloatLevel]] | None:
    """A held tick's (bids, asks) as its book takes them: the levels with a price and a
    quantity, best first, as (wire price / divisor, quantity) floats, read from the packet
    without decoding the tick; None for a tick not held."""
    return None


if _kitetick is not None:  # the C versions (same answers, tests/feeds/kite/test_kitetick_accel.py)
    kite_packet = _kitetick.packet  # type: ignore[assignment]
    kite_depth_floats = _kitetick.kite_sides  # type: ignore[assignment]


@dataclass(slots=True)
class BinanceTrade:
    recv_ns: int
    seq: int
    symbol: str
    trade_id: int
    price: str
    quantity: str
    trade_time: int  # ms
    event_time: int  # ms
    buyer_is_maker: bool

    TYPE: ClassVar[int] = 2


@dataclass(slots=True)
class BinanceDepth:
    """A ``depthUpdate`` diff: set each level to the given quantity, quantity 0 removes it."""

    recv_ns: int
    seq: int
    symbol: str
    first_update_id: int  # U
    last_update_id: int  # u
    event_time: int  # ms
    bids: tuple[StrLevel, ...]
    asks: tuple[StrLevel, ...]

    TYPE: ClassVar[int] = 3


class DepthLevels:
    """A live diff's two level arrays as the Binance parser read them, once, in C: ``wire`` is
    the msgpack of both arrays (what :func:`encode_batch` writes as they are) and
    ``bid_values``/``ask_values`` their prices and quantities as native doubles (what the book
    applies). The ``(price, quantity)`` str tuples are made from ``wire`` only when something
    reads :attr:`BinanceDepth.bids` or ``.asks``.

    Why: 40 str and 20 tuple objects per 20-level diff were most of the parse, and the WAL then
    re-encoded each of them (benchmarks/ingest_stages.py); the recorder's own path reads none.
    """

    __slots__ = ("_levels", "ask_values", "bid_values", "wire")

    def __init__(self, wire: bytes, bid_values: bytes, ask_values: bytes) -> None:
        self.wire = wire
        self.bid_values = bid_values
        self.ask_values = ask_values
        self._levels: tuple[tuple[StrLevel, ...], tuple[StrLevel, ...]] | None = None

    def levels(self) -> tuple[tuple[StrLevel, ...], tuple[StrLevel, ...]]:
        """(bids, asks) as tuples of (price, quantity) str pairs."""
        lv = self._levels
        if lv is None:
            lv = self._levels = msgpack.unpackb(b"\x92" + self.wire, raw=False, use_list=False)
        return lv


def _lazy_side(slot: object, side: int) -> property:
    get = slot.__get__  # type: ignore[attr-defined]

    def levels(self: BinanceDepth) -> tuple[StrLevel, ...]:
        v = get(self)
        return v.levels()[side] if type(v) is DepthLevels else v

    return property(levels, slot.__set__)  # type: ignore[attr-defined]


# A diff made by depth_from_levels holds the same DepthLevels in both slots; reading bids or
# asks gives the tuples either way, so equality, repr, pickling and dataclasses.replace see a
# plain record.
_depth_bids_slot = BinanceDepth.bids.__get__  # type: ignore[attr-defined]
_depth_asks_slot = BinanceDepth.asks.__get__  # type: ignore[attr-defined]
BinanceDepth.bids = _lazy_side(BinanceDepth.bids, 0)  # type: ignore[assignment,method-assign]
BinanceDepth.asks = _lazy_side(BinanceDepth.asks, 1)  # type: ignore[assignment,method-assign]


def depth_from_levels(
    recv_ns: int,
    seq: int,
    symbol: str,
    first_update_id: int,
    last_update_id: int,
    event_time: int,
    levels: DepthLevels,
) -> BinanceDepth:
    """A :class:`BinanceDepth` whose levels stay as the parser read them (see DepthLevels)."""
    return BinanceDepth(
        recv_ns,
        seq,
        symbol,
        first_update_id,
        last_update_id,
        event_time,
        levels,
        levels,  # type: ignore[arg-type]
    )


def depth_levels(d: BinanceDepth) -> DepthLevels | None:
    """The diff's levels as the parser read them, or None (a diff made from tuples, e.g. read
    back from the WAL, or one whose bids or asks were set since)."""
    v = _depth_bids_slot(d)
    return v if type(v) is DepthLevels and _depth_asks_slot(d) is v else None


@dataclass(slots=True)
class BinanceDepthSnapshot:
    """The REST ``/api/v3/depth`` answer a synchroniser started (or restarted) a book from."""

    recv_ns: int
    seq: int
    symbol: str
    last_update_id: int
    bids: tuple[StrLevel, ...]
    asks: tuple[StrLevel, ...]

    TYPE: ClassVar[int] = 4


@dataclass(slots=True)
class BookSnapshot:
    """Every level of one of our books at one instant (derived data, written to the LOB WAL)."""

    recv_ns: int
    seq: int
    venue: str
    instrument: str
    update_id: int  # last venue update applied (Binance u; Kite: the tick seq)
    bids: tuple[FloatLevel, ...]  # best first
    asks: tuple[FloatLevel, ...]  # best first

    TYPE: ClassVar[int] = 5


class StatusKind:
    CONNECTED: Final = "connected"
    DISCONNECTED: Final = "disconnected"
    GAP: Final = "gap"
    RESYNCED: Final = "resynced"
    SUBSCRIPTIONS_CHANGED: Final = "subscriptions_changed"
    DROPPED: Final = "dropped"
    VENUE_MESSAGE: Final = "venue_message"
    STARTED: Final = "started"
    STOPPED: Final = "stopped"
    REJECTED: Final = "rejected"  # records the recorder dropped (detail says how many, why)


@dataclass(slots=True)
class Status:
    """A marker in the stream: connection changes, gaps, resyncs, subscription changes.

    ``detail`` is one JSON object as text, for every venue (:func:`status_detail`; the keys of
    each kind are in docs/wal-format.md). Stores written before that hold plain text for Binance
    and system records: :func:`status_detail_fields` reads both."""

    recv_ns: int
    seq: int
    venue: str
    kind: str
    instrument: str = ""
    detail: str = ""

    TYPE: ClassVar[int] = 6


def status_detail(**fields: object) -> str:
    """A Status ``detail``: the fields as one compact JSON object, keys sorted."""
    return json.dumps(fields, separators=(",", ":"), sort_keys=True)


def status_detail_fields(detail: str) -> dict[str, object]:
    """A Status ``detail`` as a dict: the JSON object; an older store's plain text (or any
    detail that is not a JSON object) as ``{"text": detail}``; an empty detail as ``{}``."""
    if not detail:
        return {}
    try:
        doc = json.loads(detail)
    except ValueError:
        return {"text": detail}
    return doc if isinstance(doc, dict) else {"text": detail}


# The Binance venues: spot, USD-M futures (fapi/fstream), COIN-M futures (dapi/dstream). Each is
# its own stream (its records count their own ``seq``) and its own instrument namespace
# (``binance-usdm:BTCUSDT`` is not ``binance:BTCUSDT``).
BINANCE_VENUES: Final = ("binance", "binance-usdm", "binance-coinm")
FUTURES_VENUES: Final = ("binance-usdm", "binance-coinm")

# Records added with the futures venues (types 7..13) carry their venue first, at the wire
# position of BookSnapshot/Status.venue, and the symbol after it.


@dataclass(slots=True)
class BinanceFuturesDepth:
    """A futures ``depthUpdate`` diff: like :class:`BinanceDepth`, plus ``pu`` (the ``u`` of the
    symbol's previous diff, which is what futures diffs chain by) and the transaction time."""

    recv_ns: int
    seq: int
    venue: str  # "binance-usdm" | "binance-coinm"
    symbol: str
    first_update_id: int  # U
    last_update_id: int  # u
    prev_update_id: int  # pu
    event_time: int  # E, ms
    transaction_time: int  # T, ms
    bids: tuple[StrLevel, ...]
    asks: tuple[StrLevel, ...]

    TYPE: ClassVar[int] = 7


@dataclass(slots=True)
class BinanceFuturesDepthSnapshot:
    """The REST ``/fapi/v1/depth`` or ``/dapi/v1/depth`` answer a futures book (re)started from."""

    recv_ns: int
    seq: int
    venue: str
    symbol: str
    last_update_id: int
    event_time: int  # E, ms (0 when the answer has none)
    transaction_time: int  # T, ms (0 when the answer has none)
    bids: tuple[StrLevel, ...]
    asks: tuple[StrLevel, ...]

    TYPE: ClassVar[int] = 8


@dataclass(slots=True)
class BinanceAggTrade:
    """An ``aggTrade`` event (any Binance venue): trades of one taker order at one price."""

    recv_ns: int
    seq: int
    venue: str
    symbol: str
    agg_trade_id: int  # a
    price: str
    quantity: str
    first_trade_id: int  # f
    last_trade_id: int  # l
    trade_time: int  # T, ms
    event_time: int  # E, ms
    buyer_is_maker: bool  # m

    TYPE: ClassVar[int] = 9


@dataclass(slots=True)
class BinanceBookTicker:
    """A ``bookTicker`` event: best bid and ask at book update ``u``. Spot sends no event or
    transaction time (0 here)."""

    recv_ns: int
    seq: int
    venue: str
    symbol: str
    update_id: int  # u
    bid_price: str  # b
    bid_quantity: str  # B
    ask_price: str  # a
    ask_quantity: str  # A
    event_time: int  # E, ms (0 on spot)
    transaction_time: int  # T, ms (0 on spot)

    TYPE: ClassVar[int] = 10


@dataclass(slots=True)
class BinanceMarkPrice:
    """A futures ``markPriceUpdate``. ``funding_rate`` is signed decimal text, empty for a
    delivery contract (COIN-M sends ""), and ``next_funding_time`` 0 there."""

    recv_ns: int
    seq: int
    venue: str
    symbol: str
    event_time: int  # E, ms
    mark_price: str  # p
    index_price: str  # i
    estimated_settle_price: str  # P
    funding_rate: str  # r
    next_funding_time: int  # T, ms

    TYPE: ClassVar[int] = 11


@dataclass(slots=True)
class BinanceForceOrder:
    """A futures ``forceOrder`` event: a liquidation order (the latest of the symbol's last
    second, as Binance sends them)."""

    recv_ns: int
    seq: int
    venue: str
    symbol: str
    event_time: int  # E, ms
    side: str  # S: "BUY" | "SELL"
    order_type: str  # o
    time_in_force: str  # f
    quantity: str  # q
    price: str  # p
    average_price: str  # ap
    status: str  # X
    last_filled_quantity: str  # l
    filled_quantity: str  # z
    trade_time: int  # T, ms

    TYPE: ClassVar[int] = 12


@dataclass(slots=True)
class BinanceOpenInterest:
    """One answer of the REST open-interest poll (``/fapi/v1/openInterest``, ``/dapi/...``): the
    venue has no stream for it."""

    recv_ns: int
    seq: int
    venue: str
    symbol: str
    open_interest: str
    time: int  # the venue's time of the figure, ms

    TYPE: ClassVar[int] = 13


# Types whose records carry ``venue`` and ``symbol`` (the Binance records added with futures).
VENUE_SYMBOL_TYPES: Final[tuple[type, ...]] = (
    BinanceFuturesDepth,
    BinanceFuturesDepthSnapshot,
    BinanceAggTrade,
    BinanceBookTicker,
    BinanceMarkPrice,
    BinanceForceOrder,
    BinanceOpenInterest,
)


Record = (
    KiteTick
    | BinanceTrade
    | BinanceDepth
    | BinanceDepthSnapshot
    | BookSnapshot
    | Status
    | BinanceFuturesDepth
    | BinanceFuturesDepthSnapshot
    | BinanceAggTrade
    | BinanceBookTicker
    | BinanceMarkPrice
    | BinanceForceOrder
    | BinanceOpenInterest
)

WIRE_VERSION: Final = 1


# The one map of record type -> stream. Types not in it (BookSnapshot, Status, and the Binance
# types that carry their venue) count in the stream of the venue they carry.
STREAM_OF_TYPE: Final[dict[type, str]] = {
    KiteTick: "kite",
    BinanceTrade: "binance",
    BinanceDepth: "binance",
    BinanceDepthSnapshot: "binance",
}
_STREAM_OF_WIRE_TYPE: Final = {t.TYPE: stream for t, stream in STREAM_OF_TYPE.items()}


def stream_of(record: Record) -> str:
    """The stream a record's ``seq`` counts in: its venue ("kite", "binance", "system"...)."""
    return STREAM_OF_TYPE.get(type(record)) or record.venue  # type: ignore[union-attr]


# Named positions in a wire array (``[type, version, recv_ns, seq, fields...]``, see
# encode_wire): readers that filter undecoded records use these, not bare numbers.
WIRE_TYPE: Final = 0
WIRE_RECV_NS: Final = 2
WIRE_KITE_TOKEN: Final = 4  # KiteTick.instrument_token
WIRE_BINANCE_SYMBOL: Final = 4  # BinanceTrade/BinanceDepth/BinanceDepthSnapshot.symbol
WIRE_VENUE: Final = 4  # BookSnapshot/Status.venue, and the venue of types 7..13
WIRE_VENUE_SYMBOL: Final = 5  # the symbol of types 7..13 (VENUE_SYMBOL_TYPES)
WIRE_STATUS_KIND: Final = 5
WIRE_STATUS_INSTRUMENT: Final = 6


def wire_stream(w: list | tuple) -> str:
    """:func:`stream_of` for an undecoded wire array."""
    return _STREAM_OF_WIRE_TYPE.get(w[0]) or str(w[4])


def wire_is_start(w: list | tuple) -> bool:
    """Is the wire array a daemon start (the ``system``/``started`` Status)?"""
    return w[0] == 6 and w[4] == "system" and w[5] == "started"


def instrument_key(record: Record) -> str:
    """``venue:instrument`` for records about one instrument, else ``venue:``."""
    t = type(record)
    if t is KiteTick:
        return f"kite:{record.instrument_token}"  # type: ignore[union-attr]
    if t in (BinanceTrade, BinanceDepth, BinanceDepthSnapshot):
        return f"binance:{record.symbol}"  # type: ignore[union-attr]
    if t in VENUE_SYMBOL_TYPES:
        return f"{record.venue}:{record.symbol}"  # type: ignore[union-attr]
    return f"{record.venue}:{record.instrument}"  # type: ignore[union-attr]


# ---------------------------------------------------------------- encoding


def _flat3(levels: tuple[Level3, ...]) -> list[int]:
    out: list[int] = []
    for lvl in levels:
        out.extend(lvl)
    return out


def _to_wire(r: Record) -> list:
    t = type(r)
    if t is KiteTick:
        return [
            1,
            WIRE_VERSION,
            r.recv_ns,
            r.seq,
            r.instrument_token,
            _KITE_MODE_CODE[r.mode],
            r.last_price,
            r.last_traded_quantity,
            r.average_traded_price,
            r.volume_traded,
            r.total_buy_quantity,
            r.total_sell_quantity,
            r.open,
            r.high,
            r.low,
            r.close,
            r.last_trade_time,
            r.oi,
            r.oi_day_high,
            r.oi_day_low,
            r.exchange_timestamp,
            _flat3(r.bids),
            _flat3(r.asks),
            r.change,
        ]
    if t is BinanceDepth:
        return [
            3,
            WIRE_VERSION,
            r.recv_ns,
            r.seq,
            r.symbol,
            r.first_update_id,
            r.last_update_id,
            r.event_time,
            r.bids,
            r.asks,
        ]
    if t is BinanceTrade:
        return [
            2,
            WIRE_VERSION,
            r.recv_ns,
            r.seq,
            r.symbol,
            r.trade_id,
            r.price,
            r.quantity,
            r.trade_time,
            r.event_time,
            r.buyer_is_maker,
        ]
    if t is BinanceDepthSnapshot:
        return [4, WIRE_VERSION, r.recv_ns, r.seq, r.symbol, r.last_update_id, r.bids, r.asks]
    if t is BookSnapshot:
        return [
            5,
            WIRE_VERSION,
            r.recv_ns,
            r.seq,
            r.venue,
            r.instrument,
            r.update_id,
            r.bids,
            r.asks,
        ]
    if t is Status:
        # detail may quote venue text; a lone surrogate there must not make the frame fail.
        return [6, WIRE_VERSION, r.recv_ns, r.seq, r.venue, r.kind, r.instrument, _utf8(r.detail)]
    if t is BinanceFuturesDepth:
        return [
            7,
            WIRE_VERSION,
            r.recv_ns,
            r.seq,
            r.venue,
            r.symbol,
            r.first_update_id,
            r.last_update_id,
            r.prev_update_id,
            r.event_time,
            r.transaction_time,
            r.bids,
            r.asks,
        ]
    if t in _PLAIN_TYPES:
        return [t.TYPE, WIRE_VERSION, *_fields(r)]
    raise TypeError(f"not a shriven record: {t.__name__}")


def _fields(r: Record) -> list:
    return [getattr(r, name) for name in r.__slots__]  # type: ignore[union-attr]


def _utf8(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    except AttributeError:
        return str(text)
    return text


_packer = msgpack.Packer(use_bin_type=True, autoreset=True)
_batch_packers = threading.local()  # one per thread: a batch is packed in several calls


def encode_batch(records: list[Record]) -> bytes:
    """One msgpack array holding the wire form of each record, in order: :func:`py_encode_batch`,
    with held Kite ticks (:func:`kite_packet`) written from their packets in C, byte for byte
    what the reference writes for the decoded tick."""
    if _kitetick is None:
        return py_encode_batch(records)
    return _kitetick.pack_batch(records, py_encode_batch)


def py_encode_batch(records: list[Record]) -> bytes:
    """One msgpack array holding the wire form of each record, in order.

    Packed a record at a time, so only one record's wire lists are alive at once: a list of
    them all (three per Kite tick) made a 5,000-record batch hold ~15k extra small objects,
    a peak that grew the interpreter's small-object arenas in steps (benchmarks/soak_rss.py)."""
    packer = getattr(_batch_packers, "packer", None)
    if packer is None:
        packer = _batch_packers.packer = msgpack.Packer(use_bin_type=True, autoreset=False)
    chunks: list[bytes | memoryview] = []
    try:
        packer.pack_array_header(len(records))
        pack = packer.pack
        for r in records:
            lv = depth_levels(r) if type(r) is BinanceDepth else None  # type: ignore[arg-type]
            if lv is None:
                pack(_to_wire(r))
                continue
            # A live diff: its scalars, then its level arrays as the parser already wrote them.
            # Packed as an 8-array whose header is then written as the record's 10.
            head = _head_packer().pack(
                [3, WIRE_VERSION, r.recv_ns, r.seq, r.symbol, r.first_update_id,
                 r.last_update_id, r.event_time]  # type: ignore[union-attr]
            )  # fmt: skip
            chunks.append(packer.bytes())
            packer.reset()
            chunks.append(_DEPTH_HEADER)
            chunks.append(memoryview(head)[1:])
            chunks.append(lv.wire)
        if not chunks:
            return packer.bytes()
        chunks.append(packer.bytes())
        return b"".join(chunks)
    finally:
        packer.reset()


_DEPTH_HEADER: Final = b"\x9a"  # msgpack fixarray of 10: a BinanceDepth's wire form


def _head_packer() -> msgpack.Packer:
    packer = getattr(_batch_packers, "head", None)
    if packer is None:
        packer = _batch_packers.head = msgpack.Packer(use_bin_type=True, autoreset=True)
    return packer


def encode_record(record: Record) -> bytes:
    if type(record) is KiteTick and kite_packet(record) is not None:
        return encode_batch([record])[1:]  # from the packet, without its 1-array header
    return _packer.pack(_to_wire(record))


# ---------------------------------------------------------------- decoding
#
# Frames are unpacked with ``use_list=False``: msgpack arrays come back as tuples, so Binance
# levels are already the ``(price, qty)`` tuples a record holds and Kite's flat level arrays can
# be cut into ``(price, qty, orders)`` tuples by slicing (C-level, no per-level Python step).
# Arrays unpacked as lists (``WalReader.wire()``) take the general path and decode the same.


def _group3(flat: list[int] | tuple[int, ...]) -> tuple[Level3, ...]:
    it = iter(flat)
    return tuple(zip(it, it, it, strict=True))


def _slicer3(levels: int) -> Callable[[tuple[int, ...]], tuple[Level3, ...]]:
    """A C-level function cutting a flat tuple of ``3 * levels`` ints into 3-tuples."""
    if levels == 0:
        return lambda flat: ()
    if levels == 1:
        return lambda flat: (flat[0:3],)
    return itemgetter(*[slice(3 * i, 3 * i + 3) for i in range(levels)])  # type: ignore[return-value]


# By length of the flat array: Kite sends at most five levels a side; longer arrays (or ones
# that are not whole levels) take _group3, which raises for the latter.
_SLICE3: Final = {3 * n: _slicer3(n) for n in range(6)}


def _pairs(levels: list | tuple) -> tuple:
    if type(levels) is tuple and (not levels or type(levels[0]) is tuple):
        return levels  # unpacked with use_list=False: already tuples of tuples
    return tuple((lvl[0], lvl[1]) for lvl in levels)


# Fields after [type, version, recv_ns, seq] that layout 1 requires, by type. Fields appended
# since then are optional (docs/wal-format.md lists them with their defaults).
REQUIRED_FIELDS: Final = {
    1: 19, 2: 7, 3: 6, 4: 4, 5: 5, 6: 4, 7: 9, 8: 7, 9: 10, 10: 9, 11: 8, 12: 13, 13: 4,
}  # fmt: skip
_KITE_WIRE_LEN: Final = 24  # [type, version, recv_ns, seq] + 19 layout-1 fields + change


class RecordDecodeError(ValueError):
    """A payload that is valid msgpack but not a record this version understands."""


def _check_layout(w: list | tuple) -> None:
    if w[1] != WIRE_VERSION:
        raise RecordDecodeError(
            f"record layout version {w[1]!r} of type {w[0]!r} is not one this shriven reads "
            f"({WIRE_VERSION})"
        )
    need = 4 + REQUIRED_FIELDS[w[0]]
    if len(w) < need:
        raise RecordDecodeError(
            f"record of type {w[0]} has {len(w) - 4} fields, layout 1 requires "
            f"{need - 4}: the record is damaged"
        )


def _strs(*values: object) -> None:
    for v in values:
        if type(v) is not str:
            raise RecordDecodeError(f"expected a msgpack str, found {type(v).__name__} {v!r}")


def _str_pairs(levels: list | tuple) -> tuple:
    """Binance levels: ``[price, quantity]`` pairs of msgpack str, as tuples."""
    for lvl in levels:
        if len(lvl) != 2 or type(lvl[0]) is not str or type(lvl[1]) is not str:
            raise RecordDecodeError(f"a Binance level must be two msgpack str, found {lvl!r}")
    return _pairs(levels)


def _kite(w: list | tuple) -> KiteTick:
    n = len(w)
    if (n == _KITE_WIRE_LEN or n == _KITE_WIRE_LEN - 1) and w[1] == WIRE_VERSION:
        bids = w[21]
        asks = w[22]
        cut_bids = _SLICE3.get(len(bids))
        cut_asks = _SLICE3.get(len(asks))
        if (
            cut_bids is not None
            and cut_asks is not None
            and type(bids) is tuple
            and type(asks) is tuple
        ):
            return KiteTick(
                w[2], w[3], w[4], _KITE_MODE_NAME[w[5]], w[6], w[7], w[8], w[9], w[10], w[11],
                w[12], w[13], w[14], w[15], w[16], w[17], w[18], w[19], w[20],
                cut_bids(bids), cut_asks(asks), w[23] if n == _KITE_WIRE_LEN else 0,
            )  # fmt: skip
    _check_layout(w)
    return KiteTick(
        w[2],
        w[3],
        w[4],
        _KITE_MODE_NAME[w[5]],
        *w[6:21],
        _group3(w[21]),
        _group3(w[22]),
        w[23] if len(w) > 23 else 0,  # change: added after layout 1
    )


def _trade(w: list | tuple) -> BinanceTrade:
    _check_layout(w)
    _strs(w[4], w[6], w[7])
    if type(w[10]) is not bool:
        raise RecordDecodeError(f"buyer_is_maker must be a msgpack boolean, found {w[10]!r}")
    return BinanceTrade(*w[2:11])


def _depth(w: list | tuple) -> BinanceDepth:
    _check_layout(w)
    _strs(w[4])
    return BinanceDepth(w[2], w[3], w[4], w[5], w[6], w[7], _str_pairs(w[8]), _str_pairs(w[9]))


def _depth_snapshot(w: list | tuple) -> BinanceDepthSnapshot:
    _check_layout(w)
    _strs(w[4])
    return BinanceDepthSnapshot(w[2], w[3], w[4], w[5], _str_pairs(w[6]), _str_pairs(w[7]))


def _book(w: list | tuple) -> BookSnapshot:
    _check_layout(w)
    _strs(w[4], w[5])
    return BookSnapshot(w[2], w[3], w[4], w[5], w[6], _pairs(w[7]), _pairs(w[8]))


def _status(w: list | tuple) -> Status:
    _check_layout(w)
    _strs(w[4], w[5], w[6], w[7])
    return Status(*w[2:8])


def _futures_depth(w: list | tuple) -> BinanceFuturesDepth:
    _check_layout(w)
    _strs(w[4], w[5])
    return BinanceFuturesDepth(
        *w[2:11],
        _str_pairs(w[11]),
        _str_pairs(w[12]),  # type: ignore[arg-type]
    )


def _futures_snapshot(w: list | tuple) -> BinanceFuturesDepthSnapshot:
    _check_layout(w)
    _strs(w[4], w[5])
    return BinanceFuturesDepthSnapshot(
        *w[2:9],
        _str_pairs(w[9]),
        _str_pairs(w[10]),  # type: ignore[arg-type]
    )


def _int64s(*values: object) -> None:
    for v in values:
        if type(v) is not int:
            raise RecordDecodeError(f"expected a msgpack integer, found {v!r}")


def _agg_trade(w: list | tuple) -> BinanceAggTrade:
    _check_layout(w)
    _strs(w[4], w[5], w[7], w[8])
    _int64s(w[6], w[9], w[10], w[11], w[12])
    if type(w[13]) is not bool:
        raise RecordDecodeError(f"buyer_is_maker must be a msgpack boolean, found {w[13]!r}")
    return BinanceAggTrade(*w[2:14])


def _book_ticker(w: list | tuple) -> BinanceBookTicker:
    _check_layout(w)
    _strs(w[4], w[5], w[7], w[8], w[9], w[10])
    _int64s(w[6], w[11], w[12])
    return BinanceBookTicker(*w[2:13])


def _mark_price(w: list | tuple) -> BinanceMarkPrice:
    _check_layout(w)
    _strs(w[4], w[5], w[7], w[8], w[9], w[10])
    _int64s(w[6], w[11])
    return BinanceMarkPrice(*w[2:12])


def _force_order(w: list | tuple) -> BinanceForceOrder:
    _check_layout(w)
    _strs(w[4], w[5], *w[7:16])
    _int64s(w[6], w[16])
    return BinanceForceOrder(*w[2:17])


def _open_interest(w: list | tuple) -> BinanceOpenInterest:
    _check_layout(w)
    _strs(w[4], w[5], w[6])
    _int64s(w[7])
    return BinanceOpenInterest(*w[2:8])


# Types whose wire form is their fields in declaration order (type 7 has nested levels).
_PLAIN_TYPES: Final = frozenset(
    {
        BinanceFuturesDepthSnapshot,
        BinanceAggTrade,
        BinanceBookTicker,
        BinanceMarkPrice,
        BinanceForceOrder,
        BinanceOpenInterest,
    }
)

_DECODERS: Final = {
    1: _kite,
    2: _trade,
    3: _depth,
    4: _depth_snapshot,
    5: _book,
    6: _status,
    7: _futures_depth,
    8: _futures_snapshot,
    9: _agg_trade,
    10: _book_ticker,
    11: _mark_price,
    12: _force_order,
    13: _open_interest,
}


def decode_wire(wire: list | tuple) -> Record:
    try:
        decoder = _DECODERS[wire[0]]
    except KeyError:
        raise RecordDecodeError(f"unknown record type {wire[0]!r}") from None
    except (IndexError, TypeError) as exc:
        raise RecordDecodeError(f"malformed record: {exc}") from None
    try:
        return decoder(wire)
    except KeyError as exc:
        raise RecordDecodeError(f"malformed record of type {wire[0]!r}: no value {exc}") from None
    except (IndexError, TypeError, ValueError) as exc:
        raise RecordDecodeError(f"malformed record of type {wire[0]!r}: {exc}") from None


def unpack_batch(payload: bytes) -> tuple:
    """A frame payload's records as wire tuples (``use_list=False``, see above)."""
    wires = msgpack.unpackb(payload, raw=False, use_list=False, strict_map_key=False)
    if type(wires) is not tuple:
        raise RecordDecodeError("frame payload is not a msgpack array")
    return wires


def decode_wires(wires: list | tuple) -> list[Record]:
    """:func:`decode_wire` of each, in order (the dispatch inlined: this is the scan loop)."""
    decoders = _DECODERS
    try:
        return [decoders[w[0]](w) for w in wires]
    except (KeyError, IndexError, TypeError, ValueError):
        for w in wires:  # find the bad one and say what is wrong with it
            decode_wire(w)
        raise


def decode_batch(payload: bytes) -> list[Record]:
    """Inverse of :func:`encode_batch`: in C where built and the payload is plainly records,
    else by the decoders above (which raise :class:`RecordDecodeError` for a damaged one)."""
    if _c_decode_batch is not None:
        out = _c_decode_batch(payload)
        if out is not None:
            return out
    return decode_wires(unpack_batch(payload))


# The C record reader's layouts: per type, each field's kind in declaration order (see
# _records.c: i int, s str, b bool, m Kite mode, k Kite levels, p str pairs, f float pairs,
# o an int added after layout 1). Why: building a record from its wire tuple in Python cost more
# than unpacking it (benchmarks/wal_read.py).
_C_KINDS: Final[dict[type, str]] = {
    KiteTick: "iiim" + "i" * 15 + "kko",
    BinanceTrade: "iisissiib",
    BinanceDepth: "iisiiipp",
    BinanceDepthSnapshot: "iisipp",
    BookSnapshot: "iissiff",
    Status: "iissss",
    BinanceFuturesDepth: "iissiiiiipp",
    BinanceFuturesDepthSnapshot: "iissiiipp",
    BinanceAggTrade: "iississiiiib",
    BinanceBookTicker: "iississssii",
    BinanceMarkPrice: "iississssi",
    BinanceForceOrder: "iissi" + "s" * 9 + "i",
    BinanceOpenInterest: "iisssi",
}
_C_SLOT_OF: Final = {
    (BinanceDepth, "bids"): _depth_bids_slot,
    (BinanceDepth, "asks"): _depth_asks_slot,
}


def _c_layouts() -> list[tuple[int, type, tuple[object, ...], str, int]]:
    out = []
    for cls, kinds in _C_KINDS.items():
        plain = _KITE_MEMBER_SLOTS if cls is KiteTick and _kitetick is not None else cls.__dict__
        descrs = tuple(
            _C_SLOT_OF[(cls, name)].__self__ if (cls, name) in _C_SLOT_OF else plain[name]
            for name in cls.__slots__
        )
        out.append((cls.TYPE, cls, descrs, kinds, 2 + REQUIRED_FIELDS[cls.TYPE]))
    return out


try:
    from shriven import _records  # type: ignore[attr-defined]

    _records.setup(_c_layouts(), KITE_MODES)
    _c_decode_batch: Callable[[bytes], list[Record] | None] | None = _records.decode_batch
except ImportError:  # the optional C extension was not built: the decoders above do the work
    _c_decode_batch = None
DECODE_ACCELERATED: Final = _c_decode_batch is not None


def decode_record(payload: bytes) -> Record:
    return decode_wire(msgpack.unpackb(payload, raw=False, use_list=False))

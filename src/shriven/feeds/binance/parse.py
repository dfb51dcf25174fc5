"""Binance spot stream messages and REST depth answers -> records. Pure: no I/O.

Every message is checked against a typed schema (msgspec Structs, decoded in C) before anything
is built from it: integers are JSON integers within 0..2**63-1 (never bools, floats or strings),
``m`` is a JSON boolean, prices and quantities are decimal strings in the venue's format
(``[0-9]{1,20}(\\.[0-9]{1,20})?``: ASCII digits, no sign or exponent, so finite and
not negative), levels are pairs. A combined-stream wrapper (``{"stream": "btcusdt@trade",
"data": {...}}``) must name the payload's event type and symbol, and the symbol must be one we
subscribed (when the caller says which).

Only ``depthUpdate`` and ``trade`` events become records; anything else raises
:class:`BinanceMessageError` whose ``kind`` is one of :data:`ERROR_KINDS` (never text from the
message) and whose ``sample`` is the message's first 200 bytes, escaped.
"""

from __future__ import annotations

import re
from collections.abc import Container
from typing import Annotated, Final

import msgpack
import msgspec

from shriven.book.levels import py_pack_levels
from shriven.events import (
    BinanceDepth,
    BinanceDepthSnapshot,
    BinanceTrade,
    DepthLevels,
    depth_from_levels,
)

__all__ = [
    "ERROR_KINDS",
    "BinanceMessageError",
    "ServerShutdown",
    "parse_depth_snapshot",
    "parse_message",
    "read_snapshot",
    "record_ok",
    "valid_decimal",
]

SAMPLE_BYTES: Final = 200
INT64_MAX: Final = 2**63 - 1
# \Z, not $: in Python "$" also matches before a final "\n", so "1.0\n" would pass.
DECIMAL_PATTERN: Final = r"^[0-9]{1,20}(\.[0-9]{1,20})?\Z"

# Events Binance documents that we subscribe to nothing of, or do not record: a name each.
_KNOWN_UNHANDLED: Final = frozenset(
    {
        "aggTrade",
        "bookTicker",
        "kline",
        "24hrTicker",
        "24hrMiniTicker",
        "avgPrice",
        "depth",
        "depth5",
        "depth10",
        "depth20",
        "markPriceUpdate",
        "forceOrder",
        "continuous_kline",
    }
)

ERROR_KINDS: Final = frozenset(
    {
        "malformed_json",  # not JSON, not UTF-8, or nested deeper than the decoder allows
        "unexpected_message",  # JSON, but not an object we know
        "unexpected_event",  # an event type Binance does not document for our streams
        "bad_depthUpdate",  # a diff that fails the schema
        "bad_trade",  # a trade that fails the schema
        "bad_snapshot",  # a REST depth answer that fails the schema
        # the futures venues and the streams added with them (feeds/binance/streams.py)
        "bad_aggTrade",
        "bad_bookTicker",
        "bad_markPriceUpdate",
        "bad_forceOrder",
        "bad_openInterest",
        "bad_exchangeInfo",
        "stream_mismatch",  # the combined-stream name disagrees with the payload
        "unknown_symbol",  # a symbol we did not subscribe
        "venue_error",  # {"code": ..., "msg": ...}
        "server_shutdown",
        *(f"unexpected_{e}" for e in _KNOWN_UNHANDLED),
    }
)

_DECIMAL_RE: Final = re.compile(DECIMAL_PATTERN)
_DEPTH_SUFFIXES: Final = frozenset({"@depth@100ms", "@depth@1000ms"})  # the documented speeds

Int64 = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
Decimal = Annotated[str, msgspec.Meta(pattern=DECIMAL_PATTERN)]
Symbol = Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9]{1,32}\Z")]


# Level arrays are checked as raw JSON by one regex, then decoded without per-string checks:
# msgspec's pattern constraint runs Python's re once per string, 4.5x slower on the real BTCUSDT
# diffs (73 vs 19 µs a message; json.loads plus a validator in Python: 38 µs, see
# benchmarks/binance_parse.py).
_D: Final = r'"[0-9]{1,20}(?:\.[0-9]{1,20})?"'
_L: Final = rf"\[\s*{_D}\s*,\s*{_D}\s*\]"
_LEVELS_JSON: Final = re.compile(rf"\[\s*(?:{_L}(?:\s*,\s*{_L})*)?\s*\]".encode()).fullmatch
_level_list = msgspec.json.Decoder(list[tuple[str, str]]).decode


def _levels(raw: msgspec.Raw) -> tuple[tuple[str, str], ...] | None:
    """The reference reading of a level array (and the fallback without the C extension)."""
    if _LEVELS_JSON(raw) is None:
        return None
    return tuple(_level_list(raw))


# The same grammar read in one C pass (shriven.book._levels.json_levels, tested against
# _levels): the regex and the second decode were half of a diff's parse.
try:
    from shriven.book._levels import json_levels as _read_levels  # type: ignore[import-not-found]
except ImportError:
    _read_levels = _levels

_pack_wire = msgpack.Packer(use_bin_type=True, autoreset=True).pack


def _depth_levels_reference(
    b: msgspec.Raw | bytes, a: msgspec.Raw | bytes
) -> tuple[bytes, bytes, bytes] | None:
    """What ``json_depth_levels`` gives, the slow way: the msgpack of both level arrays (as
    the WAL writes the record's tuples) and each side's values as doubles; None when either
    array fails the schema."""
    bids = _levels(msgspec.Raw(b))
    asks = _levels(msgspec.Raw(a))
    if bids is None or asks is None:
        return None
    return _pack_wire(bids) + _pack_wire(asks), py_pack_levels(bids), py_pack_levels(asks)  # type: ignore[return-value]


# A live diff's levels read once in C, straight into what the WAL writes and the book applies
# (events.DepthLevels): no str or tuple per level. Without the extension the tuples are made.
try:
    from shriven.book._levels import (  # type: ignore[import-not-found]
        json_depth_levels as _depth_levels,
    )
except ImportError:
    _depth_levels = None


class _Depth(msgspec.Struct, tag_field="e", tag="depthUpdate"):
    E: Int64
    s: Symbol
    U: Int64
    u: Int64
    b: msgspec.Raw
    a: msgspec.Raw


class _Trade(msgspec.Struct, tag_field="e", tag="trade"):
    E: Int64
    s: Symbol
    t: Int64
    p: Decimal
    q: Decimal
    T: Int64
    m: bool


class _Combined(msgspec.Struct):
    stream: Annotated[str, msgspec.Meta(max_length=128)]
    data: _Depth | _Trade


class _Snapshot(msgspec.Struct):
    lastUpdateId: Int64
    bids: msgspec.Raw
    asks: msgspec.Raw
    E: Int64 = 0  # the futures venues' answers only
    T: Int64 = 0


_combined = msgspec.json.Decoder(_Combined).decode
_bare = msgspec.json.Decoder(_Depth | _Trade).decode
_snapshot = msgspec.json.Decoder(_Snapshot).decode
_any = msgspec.json.Decoder().decode
_DecodeError = msgspec.DecodeError  # ValidationError is a subclass


class BinanceMessageError(ValueError):
    """A message we cannot or do not turn into a record. ``kind`` names the reason (one of
    :data:`ERROR_KINDS`); ``sample`` is the start of the message, escaped."""

    def __init__(self, kind: str, sample: str, reason: str = "") -> None:
        self.kind = kind if kind in ERROR_KINDS else "unexpected_message"
        self.sample = sample
        super().__init__(
            f"{self.kind}: {reason} (message starts {sample})" if reason else self.kind
        )


class ServerShutdown(BinanceMessageError):
    """The venue announced it will close this connection soon (``serverShutdown`` event)."""


def _sample(raw: bytes | str) -> str:
    """The first 200 bytes, as an escaped (``repr``) string: safe to log and bounded."""
    head = raw[:SAMPLE_BYTES]
    if isinstance(head, str):
        head = head.encode("utf-8", "surrogatepass")[:SAMPLE_BYTES]
    return repr(head)


def valid_decimal(text: object) -> bool:
    """True for a price or quantity string the schema accepts (for records already stored)."""
    return isinstance(text, str) and _DECIMAL_RE.fullmatch(text) is not None


def _ids_ok(*ids: object) -> bool:
    return all(type(i) is int and 0 <= i <= INT64_MAX for i in ids)  # type: ignore[operator]


def _levels_ok(levels: object) -> bool:
    if not isinstance(levels, tuple | list):
        return False
    for level in levels:
        if not (
            isinstance(level, tuple | list)
            and len(level) == 2
            and valid_decimal(level[0])
            and valid_decimal(level[1])
        ):
            return False
    return True


def record_ok(record: object) -> bool:
    """Whether a Binance record already built (e.g. read back from a store an older recorder
    wrote) satisfies today's schema; True for records of other venues."""
    t = type(record)
    if t is BinanceDepth:
        d: BinanceDepth = record  # type: ignore[assignment]
        return (
            _ids_ok(d.first_update_id, d.last_update_id, d.event_time)
            and _levels_ok(d.bids)
            and _levels_ok(d.asks)
        )
    if t is BinanceTrade:
        tr: BinanceTrade = record  # type: ignore[assignment]
        return (
            _ids_ok(tr.trade_id, tr.trade_time, tr.event_time)
            and valid_decimal(tr.price)
            and valid_decimal(tr.quantity)
            and type(tr.buyer_is_maker) is bool
        )
    if t is BinanceDepthSnapshot:
        sn: BinanceDepthSnapshot = record  # type: ignore[assignment]
        return _ids_ok(sn.last_update_id) and _levels_ok(sn.bids) and _levels_ok(sn.asks)
    return True


def parse_message(
    raw: bytes | str,
    recv_ns: int,
    seq: int = 0,
    symbols: Container[str] | None = None,
) -> BinanceDepth | BinanceTrade | None:
    """Turn one websocket text message into a record, or None for an acknowledgement of a
    request (``{"result": null, "id": 1}``). Raises :class:`BinanceMessageError` otherwise,
    including for a symbol not in ``symbols`` (when given)."""
    try:
        msg = _combined(raw)
    except (_DecodeError, UnicodeError, RecursionError):
        try:
            data = _bare(raw)
        except (_DecodeError, UnicodeError, RecursionError):
            problem = _classify(raw)
            if problem is None:
                return None
            raise problem from None
    else:
        data = msg.data
        stream = msg.stream
        low = data.s.lower()
        if type(data) is _Depth:
            ok = stream == low + "@depth" or (
                stream.startswith(low) and stream[len(low) :] in _DEPTH_SUFFIXES
            )
        else:
            ok = stream == low + "@trade"
        if not ok:
            raise BinanceMessageError(
                "stream_mismatch", _sample(raw), "stream name disagrees with the payload"
            )
    if symbols is not None and data.s not in symbols:
        raise BinanceMessageError("unknown_symbol", _sample(raw), "symbol not subscribed")
    if type(data) is _Depth:
        if _depth_levels is not None:
            got = _depth_levels(data.b, data.a)
            if got is None:
                raise BinanceMessageError("bad_depthUpdate", _sample(raw), "bad price level")
            return depth_from_levels(
                recv_ns, seq, data.s, data.U, data.u, data.E, DepthLevels(*got)
            )
        bids = _read_levels(data.b)
        asks = _read_levels(data.a)
        if bids is None or asks is None:
            raise BinanceMessageError("bad_depthUpdate", _sample(raw), "bad price level")
        return BinanceDepth(recv_ns, seq, data.s, data.U, data.u, data.E, bids, asks)
    return BinanceTrade(recv_ns, seq, data.s, data.t, data.p, data.q, data.T, data.E, data.m)


def _classify(raw: bytes | str) -> BinanceMessageError | None:
    """Why a message failed the schema (slow path: only for messages that are not records);
    None for an acknowledgement."""
    sample = _sample(raw)
    try:
        msg = _any(raw)
    except (_DecodeError, UnicodeError, RecursionError):
        return BinanceMessageError("malformed_json", sample, "not JSON")
    if not isinstance(msg, dict):
        return BinanceMessageError("unexpected_message", sample, "not a JSON object")
    stream = msg.get("stream")
    data = msg.get("data", msg) if stream is not None else msg
    if not isinstance(data, dict):
        return BinanceMessageError("unexpected_message", sample, "data is not an object")
    event = data.get("e")
    if event in ("depthUpdate", "trade"):
        return BinanceMessageError(f"bad_{event}", sample, "missing or bad field")
    if event is None and "result" in data and "id" in data:
        return None
    if event == "serverShutdown":
        return ServerShutdown("server_shutdown", sample, "venue will close the connection")
    if event is None and "code" in data and "msg" in data:
        return BinanceMessageError("venue_error", sample, "the venue answered with an error")
    if event is None and isinstance(stream, str) and "@" in stream:
        event = stream.split("@")[1]  # bookTicker and depth<N> payloads carry no "e"
    if event is None:
        return BinanceMessageError("unexpected_message", sample, "no event type")
    if isinstance(event, str) and event in _KNOWN_UNHANDLED:
        return BinanceMessageError(f"unexpected_{event}", sample, "not handled")
    return BinanceMessageError("unexpected_event", sample, "not handled")


def parse_depth_snapshot(
    body: bytes | str, symbol: str, recv_ns: int, seq: int = 0
) -> BinanceDepthSnapshot:
    """The ``GET /api/v3/depth`` answer as a record. Raises :class:`BinanceMessageError`."""
    last_id, _e, _t, bids, asks = read_snapshot(body)
    return BinanceDepthSnapshot(recv_ns, seq, symbol, last_id, bids, asks)


def read_snapshot(
    body: bytes | str,
) -> tuple[int, int, int, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """A REST depth answer of any Binance venue: (lastUpdateId, E, T, bids, asks), E and T 0
    where the venue (spot) sends none. Raises :class:`BinanceMessageError`."""
    try:
        msg = _snapshot(body)
    except (_DecodeError, UnicodeError, RecursionError):
        raise BinanceMessageError("bad_snapshot", _sample(body), "fails the schema") from None
    bids = _read_levels(msg.bids)
    asks = _read_levels(msg.asks)
    if bids is None or asks is None:
        raise BinanceMessageError("bad_snapshot", _sample(body), "bad price level")
    return msg.lastUpdateId, msg.E, msg.T, bids, asks

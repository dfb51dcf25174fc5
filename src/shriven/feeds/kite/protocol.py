"""Kite ticker wire protocol: binary tick messages and JSON text messages to records.

A binary message is a 2-byte big-endian packet count, then per packet a 2-byte length and the
payload. The payload length says the kind: 8 LTP, 28 index quote, 32 index full, 44 quote,
184 full. A 1-byte message is a heartbeat. Integers are unsigned big-endian; prices stay the
wire integers (divide by :func:`shriven.events.kite_price_divisor` for rupees).

Pure: bytes in, records out. Malformed input is counted in :class:`FeedStats` and logged once
per kind with a hex sample; whatever can still be parsed is returned. Nothing here raises on
venue input.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from operator import itemgetter
from typing import Final

from shriven.events import (
    KITE_SEGMENT_INDICES,
    WIRE_VERSION,
    KiteTick,
    SeqCounter,
    Status,
    StatusKind,
    _kitetick,  # the C parser once it holds KiteTick, else None
)
from shriven.feeds.base import FeedStats
from shriven.logging import get_logger

__all__ = [
    "FULL_LEN",
    "INDEX_FULL_LEN",
    "INDEX_QUOTE_LEN",
    "LTP_LEN",
    "PACKET_LENGTHS",
    "QUOTE_LEN",
    "encode_message",
    "encode_packet",
    "encode_wire_packet",
    "is_heartbeat",
    "parse_message",
    "parse_text",
    "py_parse_message",
]

log = get_logger(__name__)

LTP_LEN: Final = 8
INDEX_QUOTE_LEN: Final = 28
INDEX_FULL_LEN: Final = 32
QUOTE_LEN: Final = 44
FULL_LEN: Final = 184

_U16: Final = struct.Struct(">H")
_LTP: Final = struct.Struct(">II")
# token, ltp, high, low, open, close, change (signed, kept as sent in KiteTick.change)
_INDEX_QUOTE: Final = struct.Struct(">6Ii")
_INDEX_FULL: Final = struct.Struct(">6IiI")  # ... and the exchange timestamp
# token, ltp, last qty, avg price, volume, buy qty, sell qty, open, high, low, close
_QUOTE: Final = struct.Struct(">11I")
# the quote words, last trade time, oi, oi day high, oi day low, exchange timestamp (16 words),
# then 10 depth entries (5 bids, then 5 asks) of quantity, price, orders, 2 bytes padding
_FULL: Final = struct.Struct(">16I" + "IIH2x" * 10)

# Venue limits: instruments per websocket connection, connections per API key.
MAX_TOKENS_PER_CONNECTION: Final = 3000
MAX_CONNECTIONS_PER_KEY: Final = 3

_HEX_SAMPLE: Final = 64  # bytes of a bad message shown in the log
_logged_without_stats: set[str] = set()

_Parser = Callable[[bytes, int, int, int], KiteTick]


def _ltp(data: bytes, off: int, recv_ns: int, seq: int) -> KiteTick:
    token, ltp = _LTP.unpack_from(data, off)
    return KiteTick(recv_ns, seq, token, "ltp", ltp)


def _index_quote(data: bytes, off: int, recv_ns: int, seq: int) -> KiteTick:
    token, ltp, high, low, open_, close, change = _INDEX_QUOTE.unpack_from(data, off)
    return KiteTick(
        recv_ns, seq, token, "quote", ltp, 0, 0, 0, 0, 0, open_, high, low, close, change=change
    )


def _index_full(data: bytes, off: int, recv_ns: int, seq: int) -> KiteTick:
    token, ltp, high, low, open_, close, change, ts = _INDEX_FULL.unpack_from(data, off)
    return KiteTick(
        recv_ns, seq, token, "full", ltp, 0, 0, 0, 0, 0, open_, high, low, close, 0, 0, 0, 0, ts,
        change=change,
    )  # fmt: skip


def _quote(data: bytes, off: int, recv_ns: int, seq: int) -> KiteTick:
    u = _QUOTE.unpack_from(data, off)
    return KiteTick(recv_ns, seq, u[0], "quote", *u[1:])


def _full(
    data: bytes,
    off: int,
    recv_ns: int,
    seq: int,
    _unpack: Callable[[bytes, int], tuple[int, ...]] = _FULL.unpack_from,
) -> KiteTick:
    # Unpacking into locals and building the level tuples from them is about twice as fast as
    # slicing the unpacked tuple; depth entries are (qty, price, orders) on the wire and
    # (price, qty, orders) in the record.
    (
        token, ltp, ltq, atp, volume, buy_qty, sell_qty, open_, high, low, close,
        ltt, oi, oi_high, oi_low, ts,
        bq0, bp0, bo0, bq1, bp1, bo1, bq2, bp2, bo2, bq3, bp3, bo3, bq4, bp4, bo4,
        aq0, ap0, ao0, aq1, ap1, ao1, aq2, ap2, ao2, aq3, ap3, ao3, aq4, ap4, ao4,
    ) = _unpack(data, off)  # fmt: skip
    return KiteTick(
        recv_ns, seq, token, "full", ltp, ltq, atp, volume, buy_qty, sell_qty,
        open_, high, low, close, ltt, oi, oi_high, oi_low, ts,
        ((bp0, bq0, bo0), (bp1, bq1, bo1), (bp2, bq2, bo2), (bp3, bq3, bo3), (bp4, bq4, bo4)),
        ((ap0, aq0, ao0), (ap1, aq1, ao1), (ap2, aq2, ao2), (ap3, aq3, ao3), (ap4, aq4, ao4)),
    )  # fmt: skip


_PARSERS: Final[dict[int, _Parser]] = {
    LTP_LEN: _ltp,
    INDEX_QUOTE_LEN: _index_quote,
    INDEX_FULL_LEN: _index_full,
    QUOTE_LEN: _quote,
    FULL_LEN: _full,
}
PACKET_LENGTHS: Final = frozenset(_PARSERS)


def is_heartbeat(data: bytes) -> bool:
    """The ticker sends a 1-byte binary message every second or so when nothing else is due."""
    return len(data) == 1


def _bad(errors: FeedStats | None, kind: str, data: bytes, what: str) -> None:
    if errors is not None:
        first = errors.count_error(kind) == 1
    else:
        first = kind not in _logged_without_stats
        _logged_without_stats.add(kind)
    if first:
        log.warning(
            "kite ticker message malformed; counting further ones of this kind silently",
            kind=kind,
            problem=what,
            message_bytes=len(data),
            hex_sample=data[:_HEX_SAMPLE].hex(),
        )


def parse_message(
    data: bytes, recv_ns: int, seq: SeqCounter, errors: FeedStats | None = None
) -> list[KiteTick]:
    """Every tick in one binary ticker message, in wire order; [] for a heartbeat.

    ``seq`` numbers the ticks. A packet of unknown length is skipped (its length field still
    says where the next one starts); a packet count that overruns the message, or trailing
    bytes after the counted packets, is counted and the packets before it are kept.

    With the C extension (``shriven._kitetick``) full-mode ticks come back *held*: their fields
    are read from the packet when first used (:func:`shriven.events.kite_packet`); the records
    are equal to :func:`py_parse_message`'s, which is the reference and the fallback."""
    if _kitetick is None:
        return py_parse_message(data, recv_ns, seq, errors)
    ticks, seq.value, problems = _kitetick.parse_message(data, recv_ns, seq.value)
    if problems is not None:
        for kind, what in problems:
            _bad(errors, kind, data, what)
    return ticks


def py_parse_message(
    data: bytes, recv_ns: int, seq: SeqCounter, errors: FeedStats | None = None
) -> list[KiteTick]:
    """:func:`parse_message` in Python, every field decoded at once."""
    size = len(data)
    if size < 2:
        return []
    (count,) = _U16.unpack_from(data, 0)
    off = 2
    ticks: list[KiteTick] = []
    append = ticks.append
    parsers = _PARSERS
    n = seq.value
    for _ in range(count):
        if off + 2 > size:
            _bad(errors, "kite_truncated", data, f"packet count {count} overruns the message")
            break
        (length,) = _U16.unpack_from(data, off)
        off += 2
        end = off + length
        if end > size:
            _bad(
                errors,
                "kite_truncated",
                data,
                f"packet of {length} bytes at offset {off} overruns the message of {size}",
            )
            break
        parser = parsers.get(length)
        if parser is None:
            _bad(errors, "kite_packet_length", data, f"unexpected packet length {length}")
        else:
            n += 1
            append(parser(data, off, recv_ns, n))
        off = end
    else:
        if off != size:
            _bad(errors, "kite_trailing_bytes", data, f"{size - off} bytes after {count} packets")
    seq.value = n
    return ticks


# Kite's documented text messages: {"type": "order", "data": {...}} (an order update), and
# {"type": "error" | "message", "data": "text"}. Anything bigger than this is not one of them.
TEXT_MAX_BYTES: Final = 64 * 1024
_TEXT_DATA_TYPES: Final = {"order": dict, "error": str, "message": str}


def parse_text(
    text: str | bytes, recv_ns: int, seq: SeqCounter, errors: FeedStats | None = None
) -> Status | None:
    """A ticker text message (order update, error, message) as a VENUE_MESSAGE status record,
    its detail the message re-serialised compactly (ASCII, keys sorted).

    A message that is not one of Kite's documented text messages (not JSON, nested too deep,
    over ``TEXT_MAX_BYTES``, an unknown ``type`` or a ``data`` of the wrong type) is counted in
    ``errors`` under a fixed kind, logged once per kind with a bounded sample, and dropped
    (None): it never becomes a record."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if len(data) > TEXT_MAX_BYTES:
        _bad(errors, "kite_text_too_large", data, f"{len(data)} bytes")
        return None
    try:
        msg = json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        _bad(errors, "kite_text_malformed", data, "not JSON")
        return None
    kind = msg.get("type") if isinstance(msg, dict) else None
    expected = _TEXT_DATA_TYPES.get(kind) if isinstance(kind, str) else None
    if expected is None or not isinstance(msg.get("data"), expected):
        _bad(errors, "kite_text_unexpected", data, "not an order update, error or message")
        return None
    try:
        detail = json.dumps(msg, separators=(",", ":"), sort_keys=True, allow_nan=False)
    except (ValueError, TypeError, RecursionError):  # NaN, Infinity; keys of mixed types
        _bad(errors, "kite_text_unexpected", data, "values JSON cannot carry")
        return None
    return Status(recv_ns, seq.next(), "kite", StatusKind.VENUE_MESSAGE, "", detail)


# ---------------------------------------------------------------- encoding (simulator, tests)


def encode_packet(tick: KiteTick, *, index: bool = False) -> bytes:
    """The wire payload for ``tick`` in its mode; ``index`` selects the 28/32-byte index layout
    for quote/full (the ticker uses it for tokens of the indices segment)."""
    t = tick
    if t.mode == "ltp":
        return _LTP.pack(t.instrument_token, t.last_price)
    if index:
        head = (t.instrument_token, t.last_price, t.high, t.low, t.open, t.close, t.change)
        if t.mode == "quote":
            return _INDEX_QUOTE.pack(*head)
        return _INDEX_FULL.pack(*head, t.exchange_timestamp)
    words = (
        t.instrument_token,
        t.last_price,
        t.last_traded_quantity,
        t.average_traded_price,
        t.volume_traded,
        t.total_buy_quantity,
        t.total_sell_quantity,
        t.open,
        t.high,
        t.low,
        t.close,
    )
    if t.mode == "quote":
        return _QUOTE.pack(*words)
    depth: list[int] = []
    for side in (t.bids, t.asks):
        for i in range(5):
            price, qty, orders = side[i] if i < len(side) else (0, 0, 0)
            depth += (qty, price, orders)
    return _FULL.pack(
        *words, t.last_trade_time, t.oi, t.oi_day_high, t.oi_day_low, t.exchange_timestamp, *depth
    )


def encode_message(packets: list[bytes]) -> bytes:
    """One binary ticker message holding ``packets`` (each already a wire payload)."""
    parts = [_U16.pack(len(packets))]
    for p in packets:
        parts.append(_U16.pack(len(p)))
        parts.append(p)
    return b"".join(parts)


# The packet's depth words (quantity, price, orders per level) from a WAL wire array's flat
# (price, quantity, orders) levels, bids then asks.
_WIRE_DEPTH: Final = itemgetter(*(i + d for i in range(0, 30, 3) for d in (1, 0, 2)))
_NO_LEVELS: Final = (0,) * 15


def encode_wire_packet(wire: list | tuple) -> bytes | None:
    """The wire payload of a Kite tick straight from its WAL wire array (``events``' layout:
    ``[1, version, recv_ns, seq, token, mode code, the 15 words in packet order, flat bids,
    flat asks, change]``), equal to :func:`encode_packet` of the decoded tick with the index
    layout for tokens of the indices segment; None for an array not in that layout (decode
    it instead). The live server's process sends recorded ticks so, without building a
    KiteTick each (decode and encode were most of its cost a tick)."""
    n = len(wire)
    if (n != 24 and n != 23) or wire[0] != 1 or wire[1] != WIRE_VERSION:
        return None
    token, mode = wire[4], wire[5]
    if mode == 0:
        return _LTP.pack(token, wire[6])
    if token & 0xFF == KITE_SEGMENT_INDICES:
        head = (token, wire[6], wire[13], wire[14], wire[12], wire[15], wire[23] if n == 24 else 0)
        if mode == 1:
            return _INDEX_QUOTE.pack(*head)
        return _INDEX_FULL.pack(*head, wire[20]) if mode == 2 else None
    if mode == 1:
        return _QUOTE.pack(token, *wire[6:16])
    if mode != 2:
        return None
    bids, asks = tuple(wire[21]), tuple(wire[22])
    if len(bids) != 15:
        bids = (bids + _NO_LEVELS)[:15]
    if len(asks) != 15:
        asks = (asks + _NO_LEVELS)[:15]
    return _FULL.pack(token, *wire[6:21], *_WIRE_DEPTH(bids + asks))

"""A bus payload read as a record's head from its bytes, and refused when it is not one whole
record: the sink stores payloads as they came, so this check is all that stands between a bad
message and a frame of the archive."""

from __future__ import annotations

import msgpack
import pytest

from shriven.bus.payload import PayloadError, record_head
from shriven.events import (
    BinanceDepthSnapshot,
    BinanceFuturesDepth,
    BinanceOpenInterest,
    BinanceTrade,
    BookSnapshot,
    KiteTick,
    Record,
    RecordDecodeError,
    Status,
    decode_batch,
    encode_record,
    stream_of,
)
from shriven.sim.samples import sample_records

U = "binance-usdm"
OTHERS: list[Record] = [
    BinanceDepthSnapshot(5, 2, "BTCUSDT", 100, (("1.0", "2"),), (("1.1", "3"),)),
    BookSnapshot(6, 3, "binance", "BTCUSDT", 100, ((1.0, 2.0),), ((1.1, 3.0),)),
    BinanceFuturesDepth(7, 1, U, "BTCUSDT", 10, 12, 7, 100, 99, (("60000.1", "2"),), ()),
    BinanceOpenInterest(2**63 - 1, 2**40, "binance-coinm", "BTCUSD_PERP", "10659.509", 100),
    Status(0, 0, "system", "started"),
]


def _records() -> list[Record]:
    return list(sample_records(60, seed=3)) + OTHERS


def test_type_receive_time_seq_and_stream_are_read_from_the_bytes_of_every_record() -> None:
    for r in _records():
        head = record_head(encode_record(r))
        stream = r.venue if type(r) is BookSnapshot else stream_of(r)  # type: ignore[union-attr]
        assert (head.type, head.recv_ns, head.seq, head.stream) == (
            r.TYPE, r.recv_ns, r.seq, stream
        ), r  # fmt: skip


def _wire(r: Record) -> list:
    return msgpack.unpackb(encode_record(r), raw=False)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"", "cut short"),
        (encode_record(OTHERS[2])[:-1], "cut short"),
        (encode_record(OTHERS[2]) + b"\xc0", "1 bytes after the record"),
        (msgpack.packb({"type": 3}), "not a msgpack array"),
        (msgpack.packb([99, 1, 5, 1, "x"]), "unknown record type 99"),
        (msgpack.packb([3, 2, *_wire(OTHERS[0])[2:]]), "type 3 has"),
        (msgpack.packb([4, 2, *_wire(OTHERS[0])[2:]]), "layout version 2"),
        (msgpack.packb(_wire(OTHERS[0])[:-1]), "fields, needs"),
        (msgpack.packb([4, 1, "late", 1, "BTCUSDT", 1, [], []]), "expected a msgpack integer"),
        (b"\x98\x06\x01\x05\x01\xa3\xff\xfe\xfd\x01\x90\x90", "not UTF-8"),
    ],
)
def test_a_payload_that_is_not_one_whole_record_is_refused_with_the_reason(
    payload: bytes, why: str
) -> None:
    with pytest.raises(PayloadError, match=why):
        record_head(payload)


def _with(r: Record, i: int, value: object) -> bytes:
    w = _wire(r)
    w[i] = value
    return msgpack.packb(w)


_TRADE = BinanceTrade(1, 2, "BTCUSDT", 7, "100.5", "0.1", 3, 4, True)
_TICK = KiteTick(1, 2, 256265, "full", 5, bids=((1, 2, 3),), asks=((4, 5, 6),))


@pytest.mark.parametrize(
    "payload",
    [
        _with(_TRADE, 6, 100),  # a price that is not a str
        _with(_TRADE, 10, 1),  # buyer_is_maker not a boolean
        _with(_TICK, 5, 7),  # no such Kite mode
        _with(_TICK, 21, [1, 2]),  # depth that is not whole (price, quantity, orders) levels
        _with(OTHERS[0], 6, [["1.0"]]),  # a Binance level that is not a pair
    ],
    ids=["price-int", "maker-int", "kite-mode", "kite-depth", "binance-level"],
)
def test_a_payload_of_the_right_layout_whose_fields_do_not_decode_is_refused(
    payload: bytes,
) -> None:
    # Stored, it would make its whole frame (the good records with it) unreadable.
    with pytest.raises(RecordDecodeError):
        decode_batch(b"\x91" + payload)
    with pytest.raises(PayloadError, match="does not decode"):
        record_head(payload)

"""The record types added with the futures venues (types 7..13): codec, streams, keys."""

from __future__ import annotations

import msgpack
import pytest

from shriven.events import (
    BinanceAggTrade,
    BinanceBookTicker,
    BinanceForceOrder,
    BinanceFuturesDepth,
    BinanceFuturesDepthSnapshot,
    BinanceMarkPrice,
    BinanceOpenInterest,
    Record,
    RecordDecodeError,
    decode_batch,
    encode_batch,
    instrument_key,
    stream_of,
    wire_stream,
)

U = "binance-usdm"
RECORDS: list[Record] = [
    BinanceFuturesDepth(1, 1, U, "BTCUSDT", 10, 12, 7, 100, 99, (("60000.1", "2"),), ()),
    BinanceFuturesDepthSnapshot(
        2, 2, U, "BTCUSDT", 12, 100, 99, (("60000.1", "2"),), (("60001", "1"),)
    ),
    BinanceAggTrade(3, 3, U, "BTCUSDT", 5, "60000.1", "0.003", 8, 9, 100, 101, True),
    BinanceBookTicker(4, 4, U, "BTCUSDT", 12, "60000.1", "2", "60001", "1", 101, 100),
    BinanceMarkPrice(5, 5, U, "BTCUSDT", 101, "60000.5", "60000.2", "60000.4", "-0.00010000", 7),
    BinanceForceOrder(
        6, 6, U, "BTCUSDT", 101, "SELL", "LIMIT", "IOC", "0.014", "9910", "9910", "FILLED",
        "0.014", "0.014", 100,
    ),
    BinanceOpenInterest(7, 1, "binance-coinm", "BTCUSD_PERP", "10659.509", 100),
    BinanceBookTicker(8, 9, "binance", "BTCUSDT", 3, "1", "2", "3", "4", 0, 0),
]  # fmt: skip


def test_every_new_type_round_trips_through_the_wal_codec() -> None:
    assert decode_batch(encode_batch(RECORDS)) == RECORDS


def test_new_types_count_in_their_venue_stream_and_key_by_venue() -> None:
    assert [stream_of(r) for r in RECORDS] == [U] * 6 + ["binance-coinm", "binance"]
    assert instrument_key(RECORDS[0]) == "binance-usdm:BTCUSDT"
    assert instrument_key(RECORDS[6]) == "binance-coinm:BTCUSD_PERP"
    wires = msgpack.unpackb(encode_batch(RECORDS), raw=False)
    assert [wire_stream(w) for w in wires] == [stream_of(r) for r in RECORDS]
    assert [w[0] for w in wires] == [7, 8, 9, 10, 11, 12, 13, 10]


@pytest.mark.parametrize("index", range(len(RECORDS) - 1))
def test_a_truncated_new_record_is_refused_not_misread(index: int) -> None:
    wire = msgpack.unpackb(encode_batch([RECORDS[index]]), raw=False)[0]
    with pytest.raises(RecordDecodeError):
        decode_batch(msgpack.packb([wire[:-1]]))


def test_a_new_record_with_a_number_for_a_price_is_refused() -> None:
    wire = msgpack.unpackb(encode_batch([RECORDS[2]]), raw=False)[0]
    wire[7] = 60000.1
    with pytest.raises(RecordDecodeError, match="str"):
        decode_batch(msgpack.packb([wire]))

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shriven.events import (
    BinanceDepth,
    BinanceDepthSnapshot,
    BinanceTrade,
    BookSnapshot,
    KiteTick,
    RecordDecodeError,
    Status,
    decode_batch,
    decode_wire,
    encode_batch,
    instrument_key,
    kite_price_divisor,
    stream_of,
    wire_is_start,
    wire_stream,
)

ns = st.integers(min_value=0, max_value=2**63 - 1)
u32 = st.integers(min_value=0, max_value=2**32 - 1)
i32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
decimal_str = st.decimals(
    min_value=0, max_value=10**9, places=8, allow_nan=False, allow_infinity=False
).map(lambda d: f"{d:.8f}")
str_levels = st.lists(st.tuples(decimal_str, decimal_str), max_size=20).map(tuple)
kite_levels = st.lists(st.tuples(i32, u32, st.integers(0, 65535)), max_size=5).map(tuple)
finite = st.floats(allow_nan=False, allow_infinity=False)

kite_ticks = st.builds(
    KiteTick,
    recv_ns=ns,
    seq=ns,
    instrument_token=u32,
    mode=st.sampled_from(["ltp", "quote", "full"]),
    last_price=i32,
    last_traded_quantity=u32,
    average_traded_price=i32,
    volume_traded=u32,
    total_buy_quantity=u32,
    total_sell_quantity=u32,
    open=i32,
    high=i32,
    low=i32,
    close=i32,
    last_trade_time=u32,
    oi=u32,
    oi_day_high=u32,
    oi_day_low=u32,
    exchange_timestamp=u32,
    bids=kite_levels,
    asks=kite_levels,
)
binance_trades = st.builds(
    BinanceTrade,
    recv_ns=ns,
    seq=ns,
    symbol=st.text(min_size=1, max_size=12),
    trade_id=ns,
    price=decimal_str,
    quantity=decimal_str,
    trade_time=ns,
    event_time=ns,
    buyer_is_maker=st.booleans(),
)
binance_depths = st.builds(
    BinanceDepth,
    recv_ns=ns,
    seq=ns,
    symbol=st.text(min_size=1, max_size=12),
    first_update_id=ns,
    last_update_id=ns,
    event_time=ns,
    bids=str_levels,
    asks=str_levels,
)
depth_snapshots = st.builds(
    BinanceDepthSnapshot,
    recv_ns=ns,
    seq=ns,
    symbol=st.text(min_size=1, max_size=12),
    last_update_id=ns,
    bids=str_levels,
    asks=str_levels,
)
book_snapshots = st.builds(
    BookSnapshot,
    recv_ns=ns,
    seq=ns,
    venue=st.sampled_from(["kite", "binance"]),
    instrument=st.text(max_size=20),
    update_id=ns,
    bids=st.lists(st.tuples(finite, finite), max_size=20).map(tuple),
    asks=st.lists(st.tuples(finite, finite), max_size=20).map(tuple),
)
statuses = st.builds(
    Status,
    recv_ns=ns,
    seq=ns,
    venue=st.sampled_from(["kite", "binance", "system"]),
    kind=st.sampled_from(["connected", "disconnected", "gap", "resynced"]),
    instrument=st.text(max_size=20),
    detail=st.text(max_size=200),
)
any_record = st.one_of(
    kite_ticks, binance_trades, binance_depths, depth_snapshots, book_snapshots, statuses
)


@given(st.lists(any_record, max_size=30))
def test_every_record_type_round_trips_exactly(records):
    assert decode_batch(encode_batch(records)) == records


@given(st.lists(any_record, max_size=30))
def test_a_wire_array_counts_in_the_stream_of_its_record(records):
    wires = msgpack.unpackb(encode_batch(records), use_list=True)
    assert [wire_stream(w) for w in wires] == [stream_of(r) for r in records]


def test_only_the_system_started_status_is_a_daemon_start():
    def wire(record):
        return msgpack.unpackb(encode_batch([record]), use_list=True)[0]

    assert wire_is_start(wire(Status(1, 1, "system", "started")))
    assert not wire_is_start(wire(Status(1, 1, "kite", "started")))
    assert not wire_is_start(wire(Status(1, 1, "system", "stopped")))
    assert not wire_is_start(wire(KiteTick(1, 1, 256265, "ltp", 1)))


@given(st.lists(any_record, max_size=30))
def test_wire_arrays_unpacked_as_lists_decode_like_the_tuples_frames_use(records):
    as_lists = msgpack.unpackb(encode_batch(records), use_list=True)
    assert [decode_wire(w) for w in as_lists] == records


def test_kite_levels_that_are_not_whole_levels_are_a_decode_error():
    good = encode_batch([KiteTick(1, 1, 256265, "full", 5, bids=((1, 2, 3),))])
    wire = msgpack.unpackb(good, use_list=True)
    wire[0][21] = [1, 2, 3, 4]
    with pytest.raises(RecordDecodeError, match="malformed record of type 1"):
        decode_batch(msgpack.packb(wire))


def test_binance_decimal_strings_come_back_unchanged():
    rec = BinanceDepth(1, 2, "BTCUSDT", 10, 12, 99, (("61685.99000000", "0.00000000"),), ())
    (back,) = decode_batch(encode_batch([rec]))
    assert back.bids[0] == ("61685.99000000", "0.00000000")


def test_record_from_a_later_writer_with_extra_fields_still_decodes():
    wire = [6, 1, 10, 1, "kite", "connected", "", "hello", "a field from the future"]
    (rec,) = decode_batch(msgpack.packb([wire]))
    assert rec == Status(10, 1, "kite", "connected", "", "hello")


def test_record_of_an_unknown_layout_version_is_a_decode_error():
    wire = [6, 2, 10, 1, "kite", "connected", "", "hello"]
    with pytest.raises(RecordDecodeError, match="layout version 2"):
        decode_batch(msgpack.packb([wire]))


KITE_V1 = [1, 1, 10, 3, 256265, 1, 2500005, *([0] * 14), [], []]  # the 19 fields of layout 1


def test_kite_tick_written_before_change_was_stored_reads_change_0():
    for wire in (KITE_V1, [list(KITE_V1), KITE_V1]):  # fast (one record) and general paths
        wires = wire if isinstance(wire[0], list) else [wire]
        recs = decode_batch(msgpack.packb(wires))
        assert recs[0] == KiteTick(10, 3, 256265, "quote", 2500005, close=0, change=0)


def test_kite_index_change_round_trips_signed():
    tick = KiteTick(10, 3, 256265, "quote", 2500005, close=2600000, change=-100000)
    assert decode_batch(encode_batch([tick])) == [tick]


@pytest.mark.parametrize("short", [7, 12, 22])
def test_record_shorter_than_layout_1_is_a_decode_error(short):
    with pytest.raises(RecordDecodeError, match="layout 1 requires 19"):
        decode_batch(msgpack.packb([KITE_V1[:short]]))
    status = [6, 1, 10, 1, "kite", "connected"]
    with pytest.raises(RecordDecodeError, match="layout 1 requires 4"):
        decode_batch(msgpack.packb([status]))


@pytest.mark.parametrize(
    "wire",
    [
        [6, 1, 10, 1, b"kite", "connected", "", ""],  # bin where a str belongs
        [6, 1, 10, 1, "kite", "connected", None, ""],  # nil
        [2, 1, 10, 1, "BTCUSDT", 5, b"1.0", "2.0", 1, 2, True],
        [2, 1, 10, 1, "BTCUSDT", 5, "1.0", "2.0", 1, 2, 1],  # an int is not a boolean
        [3, 1, 10, 1, "BTCUSDT", 1, 2, 3, [["1.0", None]], []],
        [4, 1, 10, 1, "BTCUSDT", 1, [], [[b"1.0", b"2.0"]]],
        [5, 1, 10, 1, "binance", None, 1, [], []],
    ],
)
def test_strings_must_be_msgpack_str(wire):
    with pytest.raises(RecordDecodeError, match=r"msgpack (str|boolean)"):
        decode_batch(msgpack.packb([wire], use_bin_type=True))


def test_unknown_record_type_is_a_decode_error():
    with pytest.raises(RecordDecodeError, match="unknown record type 99"):
        decode_batch(msgpack.packb([[99, 1, 0, 0]]))


def test_kite_price_divisor_by_segment():
    assert kite_price_divisor(408065) == 100  # NSE equity (segment 1)
    assert kite_price_divisor((1234 << 8) | 3) == 10_000_000  # CDS
    assert kite_price_divisor((1234 << 8) | 6) == 10_000  # BCD
    assert kite_price_divisor((1234 << 8) | 12) == 10_000  # NCO (12, as kiteconnect maps it)
    assert kite_price_divisor(256265) == 100  # NIFTY 50 index (segment 9)


def test_stream_and_instrument_keys():
    tick = KiteTick(1, 1, 256265, "ltp", 1)
    assert (stream_of(tick), instrument_key(tick)) == ("kite", "kite:256265")
    trade = BinanceTrade(1, 1, "BTCUSDT", 1, "1", "1", 1, 1, False)
    assert (stream_of(trade), instrument_key(trade)) == ("binance", "binance:BTCUSDT")
    status = Status(1, 1, "system", "started")
    assert stream_of(status) == "system"


@pytest.mark.parametrize("mode", [3, -1])
def test_kite_mode_outside_0_to_2_is_a_decode_error(mode):
    fast = [*KITE_V1[:5], mode, *KITE_V1[6:]]
    general = [*fast, 0, "a field from the future"]  # not the fast path's length
    for wire in (fast, general):
        with pytest.raises(RecordDecodeError, match="malformed record of type 1"):
            decode_batch(msgpack.packb([wire]))


def test_an_older_stores_plain_text_status_detail_stays_readable(tmp_path):
    from shriven.events import Status, status_detail, status_detail_fields
    from shriven.wal import WalWriter, read_records

    old = Status(1, 1, "binance", "disconnected", "", "shard 0: connection closed")
    new = Status(2, 2, "binance", "disconnected", "", status_detail(shard=0, reason="stopped"))
    with WalWriter(tmp_path, fsync_policy="never") as w:
        w.append([old, new])
    back = list(read_records(tmp_path, strict=True))
    assert back == [old, new]
    assert status_detail_fields(back[0].detail) == {"text": "shard 0: connection closed"}
    assert status_detail_fields(back[1].detail) == {"reason": "stopped", "shard": 0}
    assert status_detail_fields("") == {}

"""Frames read into columns: the C scanner gives the pure-Python reference's columns on every
input, refuses what the record decoder refuses, and scan_wal reads a store as records() does."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import msgpack
import numpy as np
import pytest

from shriven.errors import WalCorruptionError
from shriven.events import (
    BinanceAggTrade,
    BinanceDepth,
    BinanceDepthSnapshot,
    BinanceFuturesDepth,
    BinanceFuturesDepthSnapshot,
    BinanceOpenInterest,
    BookSnapshot,
    KiteTick,
    Record,
    RecordDecodeError,
    Status,
    StatusKind,
    decode_batch,
    encode_batch,
)
from shriven.replay import colscan
from shriven.replay.colscan import FrameColumns, py_scan_frame, scan_frame, scan_wal
from shriven.sim.samples import sample_records
from shriven.wal import WalReader, WalWriter

from .synth import generate

pytestmark = pytest.mark.skipif(not colscan.ACCELERATED, reason="C scanner not built")

U = "binance-usdm"
ODD: list[Record] = [
    BinanceDepthSnapshot(1, 1, "BTCUSDT", 100, (("60000.10", "1.5"),), (("60001", "2"),)),
    BinanceDepth(2, 2, "BTCUSDT", 101, 101, 7, (("60000.10", "0.00000000"),), ()),
    BinanceDepth(3, 3, "BTCUSDT", 102, 102, 7, (("6e4", "1"),), ()),  # float() reads it: SLOW
    BinanceDepth(4, 4, "BTCUSDT", 103, 103, 7, (("abc", "1"),), ()),  # the keeper refuses it
    BinanceDepth(5, 5, "ETHUSDT", 1, 2, 7, (), (("1234567890123456", "1"),)),  # 16 digits
    BinanceDepth(6, 6, "ETHUSDT", 3, 3, 7, (), (("0.00000000000000000000001", "1"),)),  # 23 dp
    Status(7, 1, "binance", StatusKind.GAP, "BTCUSDT", ""),
    Status(8, 2, "kite", StatusKind.CONNECTED, "", '{"shard":0}'),
    KiteTick(9, 1, (7 << 8) | 3, "full", 10, bids=((123_4567, 5, 1), (0, 9, 1)), asks=((5, 0, 1),)),
    KiteTick(10, 2, 256265, "full", 10),  # an index: no book
    KiteTick(11, 3, (8 << 8) | 2, "quote", 10),
    KiteTick(12, 4, (8 << 8) | 2, "full", 10, bids=(((1 << 53) + 1, 5, 1),)),  # not exact: SLOW
    BookSnapshot(13, 1, "binance", "BTCUSDT", 100, ((60000.1, 1.0),), ()),
    BinanceFuturesDepth(14, 1, U, "BTCUSDT", 10, 12, 7, 100, 99, (("60000.1", "2"),), ()),
    BinanceFuturesDepthSnapshot(15, 2, U, "BTCUSDT", 12, 100, 99, (("1", "2"),), ()),
    BinanceAggTrade(16, 3, U, "BTCUSDT", 5, "60000.1", "0.003", 8, 9, 100, 101, True),
    BinanceOpenInterest(17, 1, "binance-coinm", "BTCUSD_PERP", "10659.509", 100),
]  # fmt: skip


def assert_same(a: FrameColumns, b: FrameColumns) -> None:
    for f in dataclasses.fields(FrameColumns):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "keys":
            assert x == y
        else:
            assert x.dtype == y.dtype, f.name
            assert np.array_equal(x, y), f.name


def test_c_columns_equal_the_reference_on_sessions_and_odd_records() -> None:
    sources = [
        generate(seed=3, seconds=40, restart_at_s=15, gap_at_s=30),
        list(sample_records(3000, seed=1)),
        ODD,
    ]
    for records in sources:
        for i in range(0, len(records), 400):
            payload = encode_batch(records[i : i + 400])
            assert colscan._c_scan(payload) is not None  # the C path, not the fallback
            assert_same(scan_frame(payload), py_scan_frame(payload))


def test_book_kinds_say_what_the_keeper_does_with_each_record() -> None:
    cols = scan_frame(encode_batch(ODD))
    K = colscan
    assert list(cols.kind) == [
        K.SNAPSHOT, K.DIFF, K.SLOW, K.SLOW, K.SLOW, K.SLOW, K.GAP, K.NONE, K.KITE, K.NONE,
        K.NONE, K.SLOW, K.NONE, K.SLOW, K.SLOW, K.NONE, K.NONE,
    ]  # fmt: skip
    assert [cols.keys[k] if k >= 0 else None for k in cols.key[:7]] == ["binance:BTCUSDT"] * 4 + [
        "binance:ETHUSDT"
    ] * 2 + ["binance:BTCUSDT"]
    kite = cols.level_row == 8
    # price / 10^7 for a currency token; the zero-price and zero-quantity levels left out
    assert list(cols.level_price[kite]) == [123_4567 / 10**7]
    assert list(cols.level_qty[kite]) == [5.0]
    assert list(cols.level_qty[cols.level_row == 1]) == [0.0]  # a removal is a row


def test_damaged_records_raise_as_the_record_decoder_raises() -> None:
    wires = msgpack.unpackb(encode_batch(ODD + list(sample_records(200, seed=2))), raw=False)
    rng = random.Random(11)
    swaps: list[object] = [None, 1.5, "x", b"x", True, -1, 1 << 64 - 1, [], ["a", "b"]]
    checked = refused = 0
    for _ in range(1500):
        w = list(wires[rng.randrange(len(wires))])
        if rng.random() < 0.15:
            w = w[: rng.randrange(len(w))]
        else:
            w[rng.randrange(len(w))] = rng.choice(swaps)
        payload = msgpack.packb([w])
        try:
            decode_batch(payload)
        except (ValueError, msgpack.UnpackException):
            refused += 1
            with pytest.raises((RecordDecodeError, ValueError)):
                scan_frame(payload)
            continue
        try:
            want = py_scan_frame(payload)
        except RecordDecodeError:  # a header or id the columns cannot hold as int64
            with pytest.raises(RecordDecodeError):
                scan_frame(payload)
            refused += 1
            continue
        assert_same(scan_frame(payload), want)
        checked += 1
    assert checked > 100 and refused > 100


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Record]]:
    directory = tmp_path_factory.mktemp("colscan") / "ticks"
    records = generate(seed=9, seconds=60, gap_at_s=20)
    with WalWriter(directory, compression=True, segment_size=32 * 1024) as w:
        for i in range(0, len(records), 50):
            w.append(records[i : i + 50])
    return directory, records


def test_scan_wal_reads_the_records_records_reads_with_time_ranges(
    store: tuple[Path, list[Record]],
) -> None:
    directory, records = store
    lo, hi = records[300].recv_ns, records[900].recv_ns
    for start, end in ((None, None), (lo, hi), (lo, None)):
        want = list(WalReader(directory).records(start, end))
        got = list(scan_wal(WalReader(directory), start, end))
        assert [t for c in got for t in c.types.tolist()] == [r.TYPE for r in want]
        assert [t for c in got for t in c.recv_ns.tolist()] == [r.recv_ns for r in want]
        for cols in got:  # level rows still point at their records after the range cut
            assert (cols.level_row < len(cols)).all()
            assert set(cols.kind[cols.level_row]) <= {colscan.DIFF, colscan.SNAPSHOT, colscan.KITE}


def test_a_damaged_frame_raises_strict_and_is_skipped_and_counted_tolerant(
    store: tuple[Path, list[Record]], tmp_path: Path
) -> None:
    directory, _records = store
    copy = tmp_path / "ticks"
    copy.mkdir()
    for p in directory.iterdir():
        copy.joinpath(p.name).write_bytes(p.read_bytes())
    first = copy / "segment_00000000.wal"
    data = bytearray(first.read_bytes())
    data[200] ^= 0xFF
    first.write_bytes(bytes(data))
    with pytest.raises(WalCorruptionError):
        list(scan_wal(WalReader(copy)))
    tolerant = WalReader(copy, strict=False)
    got = sum(len(c) for c in scan_wal(tolerant))
    baseline = WalReader(copy, strict=False)
    assert got == sum(1 for _ in baseline.records())
    assert tolerant.stats.corrupt_frames == baseline.stats.corrupt_frames == 1


@pytest.mark.parametrize(
    "only", ["binance:BTCUSDT", "binance:ETHUSDT", f"kite:{(7 << 8) | 3}", f"{U}:BTCUSDT", "kite:0"]
)
def test_only_one_book_leaves_the_others_unread_as_the_reference_does(only: str) -> None:
    payload = encode_batch(ODD + generate(seed=4, seconds=20))
    got = scan_frame(payload, only)
    assert colscan._c_scan(payload, only) is not None
    assert_same(got, py_scan_frame(payload, only))
    assert set(got.keys) <= {only}
    assert (got.kind[got.key < 0] == colscan.NONE).all()


def test_a_level_count_no_payload_could_hold_is_refused_not_allocated() -> None:
    # a diff whose bids array header (array32) claims four billion levels
    head = msgpack.packb([3, 1, 1, 1, "BTCUSDT", 1, 2, 3])
    record = b"\x9a" + head[1:] + b"\xdd\xff\xff\xff\xf0" + b"\x90"
    payload = b"\x91" + record
    with pytest.raises((RecordDecodeError, ValueError, msgpack.UnpackException)):
        scan_frame(payload)

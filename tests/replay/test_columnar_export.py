"""Replay to Parquet and Arrow a column at a time (replay.columnar_export) writes what the record
path writes: the same Parquet bytes, the same Arrow table, the same notes, on simulated and
recorded stores of every record type, on the values that take the record path, on damage, and
on records written out of order by more than the replay window."""

from __future__ import annotations

import base64
import importlib
import io
import random
import struct
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from shriven.errors import ReplayError
from shriven.events import (
    BinanceFuturesDepth,
    BinanceMarkPrice,
    BinanceTrade,
    KiteTick,
    Record,
    SeqCounter,
    Status,
    StatusKind,
)
from shriven.feeds.binance.parse import parse_depth_snapshot, parse_message
from shriven.feeds.kite.protocol import parse_message as parse_kite_message
from shriven.replay import export, replay_range
from shriven.replay.ordering import DEFAULT_WINDOW_NS, OrderStats, reorder
from shriven.replay.select import RefusedFilter, Selection
from shriven.replay.store import StoreReader
from shriven.wal import list_segments
from shriven.wal.format import FRAME_HEADER, FRAME_HEADER_SIZE, SEGMENT_HEADER_SIZE

from .synth import NS, T0, generate, record_store
from .test_futures_replay import futures_records

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
columnar = importlib.import_module("shriven.replay.columnar_export")  # ours: must import

IST = ZoneInfo("Asia/Kolkata")


def record_path(
    data_dir: Path,
    fmt: str,
    start_ns: int | None = None,
    end_ns: int | None = None,
    skip_damaged: bool = False,
) -> tuple[bytes, int, int, str]:
    """What the record path writes (store.records -> RefusedFilter -> export), with the
    refused, late and skipped counts."""
    store = StoreReader(data_dir, strict=not skip_damaged)
    refused = RefusedFilter()
    records = refused(store.records(Selection(), start_ns, end_ns, DEFAULT_WINDOW_NS))
    out = io.BytesIO()
    write = export.write_parquet if fmt == "parquet" else export.write_arrow
    write(records, out, IST)
    return out.getvalue(), refused.skipped, store.order.late, store.skipped()


def columnar_path(
    data_dir: Path,
    fmt: str,
    start_ns: int | None = None,
    end_ns: int | None = None,
    skip_damaged: bool = False,
) -> tuple[bytes, list[str]]:
    out = io.BytesIO()
    result = replay_range(
        data_dir, out, IST, fmt=fmt, start_ns=start_ns, end_ns=end_ns, skip_damaged=skip_damaged
    )
    return out.getvalue(), result.notes


def table(data: bytes, fmt: str):  # type: ignore[no-untyped-def]
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(data))
    return pa.ipc.open_stream(data).read_all()


def assert_same(
    data_dir: Path, fmts: tuple[str, ...] = ("parquet", "arrow"), **kw: object
) -> list[str]:
    notes: list[str] = []
    for fmt in fmts:
        want, refused, late, skipped = record_path(data_dir, fmt, **kw)  # type: ignore[arg-type]
        got, notes = columnar_path(data_dir, fmt, **kw)  # type: ignore[arg-type]
        assert table(got, fmt).equals(table(want, fmt))
        if fmt == "parquet":
            assert got == want
        assert (refused > 0) == any("schema refuses" in n for n in notes)
        assert (late > 0) == any(f"{late} records were written over" in n for n in notes)
        if skipped:
            assert skipped in notes
    return notes


def test_a_simulated_session_gives_the_record_paths_bytes(tmp_path: Path) -> None:
    records = generate(seed=3, seconds=30, restart_at_s=10, gap_at_s=20)
    record_store(tmp_path / "store", records, segment_size=32 * 1024)
    assert_same(tmp_path / "store")
    # a range cutting frames, and one holding nothing
    assert_same(tmp_path / "store", start_ns=T0 + 7 * NS + 123, end_ns=T0 + 23 * NS)
    assert_same(tmp_path / "store", start_ns=T0 - 10 * NS, end_ns=T0 - NS)


def _kite_ticks(kite_fixtures: Path, recv: int) -> list[Record]:
    full = base64.b64decode((kite_fixtures / "ticker_full.packet").read_text())
    quote = base64.b64decode((kite_fixtures / "ticker_quote.packet").read_text())
    message = struct.pack(">HH", 2, len(full)) + full + struct.pack(">H", len(quote)) + quote
    return list(parse_kite_message(message, recv, SeqCounter()))


def _spot(binance_fixtures: Path) -> list[Record]:
    folder = binance_fixtures / "hftbacktest_spot_btcusdt_20240808"
    lines = (folder / "depth_diff_BTCUSDT.jsonl").read_text().splitlines()[:300]
    lines += (folder / "trade_BTCUSDT.jsonl").read_text().splitlines()[:100]
    out: list[Record] = [
        parse_depth_snapshot((folder / "depth_snapshot_BTCUSDT.json").read_text(), "BTCUSDT", 0, 0)
    ]
    rest = [r for x in lines if x.strip() and (r := parse_message(x, 0, 0)) is not None]
    random.Random(1).shuffle(rest)  # diffs and trades mixed
    return out + rest


def test_recorded_kite_binance_spot_and_futures_records_give_the_same_output(
    tmp_path: Path, kite_fixtures: Path, binance_fixtures: Path
) -> None:
    futures = futures_records(binance_fixtures)
    others = _spot(binance_fixtures)
    records: list[Record] = [futures[0]]  # the daemon start
    seq = {"kite": 0, "binance": 0}
    rng = random.Random(4)
    for i, r in enumerate(futures[1:]):
        records.append(r)
        if i % 2 and others:
            o = others.pop(0)
            o.recv_ns, o.seq = r.recv_ns + rng.randint(-5, 5) * 1_000_000, seq["binance"] + 1
            seq["binance"] += 1
            records.append(o)
        if i % 7 == 0:
            for t in _kite_ticks(kite_fixtures, r.recv_ns + 1):
                seq["kite"] += 1
                t.seq = seq["kite"]
                records.append(t)
    kinds = {type(r).__name__ for r in records}
    assert {"KiteTick", "BinanceDepth", "BinanceTrade", "BinanceDepthSnapshot"} <= kinds
    assert {"BinanceFuturesDepth", "BinanceMarkPrice", "BinanceOpenInterest"} <= kinds
    record_store(tmp_path / "store", records)
    assert_same(tmp_path / "store")


def _store(tmp_path: Path, records: list[Record]) -> Path:
    record_store(tmp_path / "store", records)
    return tmp_path / "store"


def _trade(i: int, price: str, qty: str = "0.5") -> BinanceTrade:
    return BinanceTrade(T0 + i * NS, i, "BTCUSDT", i, price, qty, 1, 1, i % 2 == 0)


def test_refused_and_unplain_values_are_written_as_the_record_path_writes_them(
    tmp_path: Path,
) -> None:
    start = Status(T0, 1, "system", StatusKind.STARTED, "", "{}")
    records: list[Record] = [
        start,
        _trade(1, "100.5"),
        _trade(2, "abc"),  # refused by today's schema: skipped, with the note
        _trade(3, "12345678901234567890.12345678"),  # 28 digits: within decimal128(38, 8)
        BinanceMarkPrice(T0 + 4 * NS, 1, "binance-usdm", "X", 1, "1E+2", "2", "3", "", 5),
        KiteTick(T0 + 5 * NS, 1, 408065, "full", 2**62, bids=((2**61, 1, 1),)),  # past int64
        KiteTick(T0 + 6 * NS, 2, 0x103, "full", 123456789, bids=((123456780, 10, 2),)),  # CDS
        # a float id the decoder lets through: its frame is not plain, and takes the record path
        BinanceFuturesDepth(
            T0 + 7 * NS, 2, "binance-usdm", "X", 1.5, 2, 0, 1, 1, (("1", "2"),), ()
        ),
    ]
    notes = assert_same(_store(tmp_path, records))
    assert any("skipped 1 stored records" in n for n in notes)


def test_a_value_past_eight_decimals_fails_as_the_record_path_fails(tmp_path: Path) -> None:
    data = _store(tmp_path, [_trade(1, "0.123456789")])
    with pytest.raises(ReplayError) as want:
        record_path(data, "parquet")
    with pytest.raises(ReplayError) as got:
        columnar_path(data, "parquet")
    assert str(got.value) == str(want.value)


def test_a_damaged_frame_is_skipped_or_refused_as_the_record_path_does(tmp_path: Path) -> None:
    data = _store(tmp_path, generate(seed=5, seconds=40, rate_hz=20))
    segment = list_segments(data / "ticks")[0][1]
    raw = bytearray(segment.read_bytes())
    frames, pos = [], SEGMENT_HEADER_SIZE
    while pos < len(raw):
        _magic, plen, _count, *_ = FRAME_HEADER.unpack_from(raw, pos)
        frames.append(pos)
        pos += FRAME_HEADER_SIZE + plen
    raw[frames[len(frames) // 2] + FRAME_HEADER_SIZE + 3] ^= 0x10
    segment.write_bytes(bytes(raw))
    with pytest.raises(Exception) as want:
        record_path(data, "parquet")
    with pytest.raises(Exception) as got:
        columnar_path(data, "parquet")
    assert (type(got.value), str(got.value)) == (type(want.value), str(want.value))
    notes = assert_same(data, skip_damaged=True)
    assert any("skipped 1 damaged frame" in n for n in notes)


def test_the_column_order_is_reorders_order_with_its_late_count() -> None:
    """_Order against ordering.reorder on keys with clock steps back past the window, fed in
    chunks of random sizes, over several sort points."""
    rng = random.Random(11)
    streams = ["kite", "binance", "binance-usdm", "system"]
    recv = T0
    records = []
    for i in range(60_000):
        recv += rng.randint(0, 2_000_000)
        if rng.random() < 0.0005:
            recv -= rng.randint(1, 3) * DEFAULT_WINDOW_NS  # the clock stepped back
        records.append(Status(recv, rng.randint(0, 5), rng.choice(streams), "x", str(i)))
    want_stats = OrderStats()
    want = [int(r.instrument) for r in reorder(records, DEFAULT_WINDOW_NS, want_stats)]
    got_stats = OrderStats()
    order = columnar._Order(DEFAULT_WINDOW_NS, got_stats)
    got: list[int] = []
    at = 0
    while at < len(records):
        part = records[at : at + rng.randint(1, 5_000)]
        at += len(part)
        keys = [(r.recv_ns, r.seq) for r in part]
        rows = [int(r.instrument) for r in part]
        for out in order.feed(
            columnar.np.array([k[0] for k in keys]),
            order.stream_codes([r.venue for r in part]),
            columnar.np.array([k[1] for k in keys]),
            columnar.np.array(rows),
        ):
            got.extend(out.tolist())
    for out in order.finish():
        got.extend(out.tolist())
    assert want_stats.late > 0
    assert (got, got_stats.late, got_stats.records) == (want, want_stats.late, want_stats.records)


def test_records_past_the_window_come_out_where_the_record_path_puts_them(
    tmp_path: Path,
) -> None:
    records: list[Record] = [Status(T0, 1, "system", StatusKind.STARTED, "", "{}")]
    for i in range(1, 17_000):  # past the first sort point (16,384 records)
        back = 60 * NS if i in (5_000, 16_900) else 0  # written well after later-received ones
        records.append(_trade(i, f"{100 + i % 50}.25"))
        records[-1].recv_ns = T0 + i * NS // 100 - back
    notes = assert_same(_store(tmp_path, records), ("parquet",))
    assert any("records were written over 10 s after" in n for n in notes)


def test_progress_lines_count_the_rows_written(tmp_path: Path) -> None:
    data = _store(tmp_path, [_trade(i, "1.5") for i in range(1, 50)])
    progress = io.StringIO()
    replay_range(data, io.BytesIO(), IST, fmt="parquet", progress=progress)
    assert progress.getvalue().endswith(
        "\rreplay: 49 records, last at 2026-11-20T09:15:49.000000000+05:30\n"
    )


def test_snapshot_symbol_and_venue_selections_still_export(tmp_path: Path) -> None:
    data = _store(tmp_path, generate(seed=2, seconds=20))
    for kw in ({"kinds": ["snapshots", "depth"]}, {"symbols": ["BTCUSDT"]}, {"venue": "kite"}):
        out = io.BytesIO()
        replay_range(data, out, IST, fmt="parquet", **kw)  # type: ignore[arg-type]
        assert pq.read_table(io.BytesIO(out.getvalue())).num_rows > 0

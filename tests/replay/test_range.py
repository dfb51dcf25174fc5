"""Range reads from a recorded store: boundaries, order, seeking, symbols, and every export
format parsed back into the very records that were recorded."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shriven.events import (
    BinanceDepth,
    BinanceDepthSnapshot,
    BinanceTrade,
    BookSnapshot,
    KiteTick,
    Record,
    Status,
    kite_price_divisor,
)
from shriven.replay import export
from shriven.replay.ordering import order_key
from shriven.replay.select import Selection, parse_kinds
from shriven.replay.store import StoreReader
from shriven.replay.times import load_zone, parse_instant

from .synth import NS, T0, Session, generate, record_store

IST = load_zone("Asia/Kolkata")
ALL = parse_kinds(["ticks,trades,depth,status,snapshots"])


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Session]:
    data_dir = tmp_path_factory.mktemp("store")
    session = record_store(data_dir, generate(seed=11, seconds=300, rate_hz=40))
    return data_dir, session


def _expected(session: Session, sel: Selection, start: int | None, end: int | None) -> list:
    lo = start if start is not None else -1
    hi = end if end is not None else 1 << 63
    ticks = [r for r in session.ticks if lo <= r.recv_ns < hi and sel.matches(r)]
    snaps = [r for r in session.snapshots if lo <= r.recv_ns < hi and sel.matches(r)]
    # stable sorts of write order, ticks before lob on equal keys
    return sorted(sorted(ticks, key=order_key) + sorted(snaps, key=order_key), key=order_key)


def test_whole_store_in_receive_then_sequence_order(recorded: tuple[Path, Session]) -> None:
    data_dir, session = recorded
    got = list(StoreReader(data_dir).records(Selection(ALL), None, None))
    assert got == _expected(session, Selection(ALL), None, None)
    assert len(got) == len(session.ticks) + len(session.snapshots)
    keys = [order_key(r) for r in got]
    assert keys == sorted(keys)
    # the store really was written out of receive order in places
    assert [r.recv_ns for r in session.ticks] != sorted(r.recv_ns for r in session.ticks)


def test_start_is_inclusive_and_end_exclusive(recorded: tuple[Path, Session]) -> None:
    data_dir, session = recorded
    start = session.ticks[1000].recv_ns
    end = session.ticks[3000].recv_ns
    got = list(StoreReader(data_dir).records(Selection(ALL), start, end))
    assert got == _expected(session, Selection(ALL), start, end)
    assert any(r.recv_ns == start for r in got)
    assert all(start <= r.recv_ns < end for r in got)
    assert not any(r.recv_ns == end for r in got)
    # adjacent ranges partition the records: nothing twice, nothing lost
    mid = session.ticks[2000].recv_ns
    store = StoreReader(data_dir)
    halves = list(store.records(Selection(ALL), start, mid)) + list(
        store.records(Selection(ALL), mid, end)
    )
    assert sorted(halves, key=order_key) == got


def test_a_late_range_seeks_with_the_index(recorded: tuple[Path, Session]) -> None:
    data_dir, session = recorded
    segments = sorted((data_dir / "ticks").glob("*.wal"))
    total_bytes = sum(p.stat().st_size for p in segments)
    assert len(segments) >= 8
    start = session.ticks[-600].recv_ns
    store = StoreReader(data_dir)
    got = list(store.records(Selection(ALL), start, None))
    assert got == _expected(session, Selection(ALL), start, None)
    stats = store.ticks.stats
    assert stats.segments_opened <= 2 < len(segments)
    assert stats.bytes_read < total_bytes / 4


def test_symbol_venue_and_kind_selection(recorded: tuple[Path, Session]) -> None:
    data_dir, session = recorded
    sel = Selection(parse_kinds(["depth,status"]), None, frozenset({"binance:BTCUSDT"}))
    got = list(StoreReader(data_dir).records(sel, None, None))
    assert got == _expected(session, sel, None, None)
    assert {type(r) for r in got} == {BinanceDepth, BinanceDepthSnapshot, Status}
    assert {r.symbol for r in got if type(r) is not Status} == {"BTCUSDT"}
    kite = Selection(parse_kinds(["ticks"]), "kite")
    got = list(StoreReader(data_dir).records(kite, None, None))
    assert got and all(type(r) is KiteTick for r in got)


# ---------------------------------------------------------------- formats parsed back


def _levels(value: object) -> list:
    return json.loads(value) if isinstance(value, str) else list(value or [])


def _int(value: object) -> int:
    return int(value)  # type: ignore[call-overload]


def _kite_wire(text: object, divisor: int) -> int:
    wire = Decimal(str(text)) * divisor
    assert wire == wire.to_integral_value(), text
    return int(wire)


def _binance_text(value: object) -> str:
    """Binance sends 8 decimals; Parquet gives Decimals at scale 8, text formats the string."""
    return value if isinstance(value, str) else f"{value:.8f}"


def _bool(value: object) -> bool:
    return value if isinstance(value, bool) else value == "true"


def row_to_record(row: dict) -> Record:
    """Rebuild the recorded record from an exported row (JSON, CSV or Parquet typed)."""
    kind = row["type"]
    recv, seq = _int(row["recv_ns"]), _int(row["seq"])
    if kind == "kite_tick":
        token = _int(row["instrument_token"])
        div = kite_price_divisor(token)

        def lv(side: str) -> tuple:
            out = []
            for lvl in _levels(row[side]):
                if isinstance(lvl, dict):
                    lvl = [lvl["price"], lvl["quantity"], lvl["orders"]]
                out.append((_kite_wire(lvl[0], div), int(lvl[1]), int(lvl[2])))
            return tuple(out)

        return KiteTick(
            recv,
            seq,
            token,
            row["mode"],
            _kite_wire(row["last_price"], div),
            _int(row["last_traded_quantity"]),
            _kite_wire(row["average_traded_price"], div),
            _int(row["volume_traded"]),
            _int(row["total_buy_quantity"]),
            _int(row["total_sell_quantity"]),
            _kite_wire(row["open"], div),
            _kite_wire(row["high"], div),
            _kite_wire(row["low"], div),
            _kite_wire(row["close"], div),
            _int(row["last_trade_time"]),
            _int(row["oi"]),
            _int(row["oi_day_high"]),
            _int(row["oi_day_low"]),
            _int(row["exchange_timestamp"]),
            lv("bids"),
            lv("asks"),
        )

    def pairs(side: str) -> tuple:
        out = []
        for lvl in _levels(row[side]):
            if isinstance(lvl, dict):
                lvl = [lvl["price"], lvl["quantity"]]
            out.append((_binance_text(lvl[0]), _binance_text(lvl[1])))
        return tuple(out)

    if kind == "binance_trade":
        return BinanceTrade(
            recv,
            seq,
            row["symbol"],
            _int(row["trade_id"]),
            _binance_text(row["price"]),
            _binance_text(row["quantity"]),
            _int(row["trade_time"]),
            _int(row["event_time"]),
            _bool(row["buyer_is_maker"]),
        )
    if kind == "binance_depth":
        return BinanceDepth(
            recv,
            seq,
            row["symbol"],
            _int(row["first_update_id"]),
            _int(row["last_update_id"]),
            _int(row["event_time"]),
            pairs("bids"),
            pairs("asks"),
        )
    if kind == "binance_depth_snapshot":
        return BinanceDepthSnapshot(
            recv, seq, row["symbol"], _int(row["last_update_id"]), pairs("bids"), pairs("asks")
        )
    if kind == "book_snapshot":

        def floats(side: str) -> tuple:
            return tuple(
                (float(x["price"]), float(x["quantity"]))
                if isinstance(x, dict)
                else (float(x[0]), float(x[1]))
                for x in _levels(row[side])
            )

        return BookSnapshot(
            recv,
            seq,
            row["venue"],
            row["instrument"],
            _int(row["update_id"]),
            floats("book_bids"),
            floats("book_asks"),
        )
    assert kind == "status"
    return Status(recv, seq, row["venue"], row["kind"], row["instrument"], row["detail"] or "")


def _records(data_dir: Path) -> list[Record]:
    """Two and a half minutes: every record type, two rounds of book snapshots."""
    return list(StoreReader(data_dir).records(Selection(ALL), T0, T0 + 150 * NS))


def test_jsonl_parses_back_into_the_records(recorded: tuple[Path, Session]) -> None:
    data_dir, _ = recorded
    records = _records(data_dir)
    buf = io.StringIO()
    assert export.write_jsonl(iter(records), buf, IST) == len(records)
    rows = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert [row_to_record(r) for r in rows] == records
    assert all(parse_instant(r["time"], IST) == r["recv_ns"] for r in rows[:50])
    assert rows[0]["time"].endswith("+05:30")
    tick = next(r for r in rows if r["type"] == "kite_tick" and r["mode"] == "full")
    assert tick["last_price"] == f"{tick['instrument_token'] and tick['last_price']}"
    assert "." in tick["last_price"] and len(tick["last_price"].split(".")[1]) == 2


def test_csv_parses_back_into_the_records(recorded: tuple[Path, Session]) -> None:
    data_dir, _ = recorded
    records = _records(data_dir)
    buf = io.StringIO()
    export.write_csv(iter(records), buf, IST)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert [row_to_record(r) for r in rows] == records


def test_parquet_has_typed_columns_and_parses_back(
    recorded: tuple[Path, Session], tmp_path: Path
) -> None:
    data_dir, _ = recorded
    records = _records(data_dir)
    path = tmp_path / "out.parquet"
    with open(path, "wb") as f:
        export.write_parquet(iter(records), f, IST)
    table = pq.read_table(path)
    schema = table.schema
    assert schema.field("time").type == pa.timestamp("ns", tz="Asia/Kolkata")
    assert schema.field("last_price").type == pa.decimal128(38, 8)
    assert schema.field("volume_traded").type == pa.int64()
    assert schema.field("buyer_is_maker").type == pa.bool_()
    assert table.column("time").cast(pa.int64()).to_pylist() == [r.recv_ns for r in records]
    rows = table.drop_columns(["time"]).to_pylist()
    assert [row_to_record(r) for r in rows] == records
    frame = pytest.importorskip("pandas").read_parquet(path)
    assert len(frame) == len(records)
    assert str(frame["time"].dtype) == "datetime64[ns, Asia/Kolkata]"
    duckdb = pytest.importorskip("duckdb")
    with duckdb.connect() as db:
        rows = db.execute(
            "SELECT type, count(*), sum(last_price), max(len(bids)), min(recv_ns) "
            f"FROM read_parquet('{path}') GROUP BY type ORDER BY type"
        ).fetchall()
    kite = [r for r in records if type(r) is KiteTick]
    by_type = {r[0]: r for r in rows}
    assert sum(r[1] for r in rows) == len(records)
    assert by_type["kite_tick"][1] == len(kite)
    assert by_type["kite_tick"][2] == sum(
        Decimal(r.last_price) / kite_price_divisor(r.instrument_token) for r in kite
    )
    assert by_type["kite_tick"][3] == 5


def test_table_states_the_zone(recorded: tuple[Path, Session]) -> None:
    data_dir, _ = recorded
    buf = io.StringIO()
    sel = Selection(parse_kinds(None), None)
    n = export.write_table(StoreReader(data_dir).records(sel, T0, T0 + 5 * NS), buf, IST)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "# times in Asia/Kolkata, each with its UTC offset"
    assert len(lines) == n + 2
    assert lines[2].startswith("2026-11-20T09:15:00.000000000+05:30 status")
    statuses = [line[74:] for line in lines[2:] if line.split()[1] == "status"]  # details
    assert statuses and all(s.split()[0] in ("kite", "binance", "system") for s in statuses)


def test_two_exports_of_the_same_range_are_byte_identical(
    recorded: tuple[Path, Session], tmp_path: Path
) -> None:
    data_dir, session = recorded
    start, end = session.ticks[100].recv_ns, T0 + 150 * NS
    outputs = []
    for i in range(2):
        buf = io.StringIO()
        export.write_jsonl(StoreReader(data_dir).records(Selection(ALL), start, end), buf, IST)
        path = tmp_path / f"{i}.parquet"
        with open(path, "wb") as f:
            export.write_parquet(StoreReader(data_dir).records(Selection(ALL), start, end), f, IST)
        outputs.append((buf.getvalue(), path.read_bytes()))
    assert outputs[0] == outputs[1]


def test_table_shows_no_volume_for_index_ticks_which_carry_none() -> None:
    index = KiteTick(T0, 1, 256265, "full", 2_500_005, open=2_499_000)  # segment 9: an index
    future = KiteTick(T0, 2, 13_368_066, "quote", 2_500_005, 75, volume_traded=1_000)
    buf = io.StringIO()
    export.write_table([index, future], buf, IST)
    index_line, future_line = buf.getvalue().splitlines()[2:]
    assert index_line.endswith("full ltp=25000.05")
    assert future_line.endswith("quote ltp=25000.05 ltq=75 vol=1000")

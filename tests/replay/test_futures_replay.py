"""Replay of a store holding the futures-era record types (7..13), written the way the daemon
writes: the real USD-M recording of AKROUSDT (diffs with ``pu``, the REST snapshot, bookTickers,
aggTrades) plus mark prices, a liquidation and open interest. Every format names every type;
`replay book` and verify-books rebuild the futures book by the pu rule."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from shriven.book import BookKeeper
from shriven.events import (
    BinanceForceOrder,
    BinanceFuturesDepth,
    BinanceMarkPrice,
    BinanceOpenInterest,
    Record,
    Status,
    StatusKind,
)
from shriven.feeds.binance.streams import parse_futures_snapshot, parse_venue_message
from shriven.replay import replay_book, replay_range, verify_store

from .synth import NS, T0, record_store

UTC = ZoneInfo("UTC")
VENUE = "binance-usdm"
SYMBOL = "AKROUSDT"
TYPES = {
    "binance_futures_depth",
    "binance_futures_depth_snapshot",
    "binance_book_ticker",
    "binance_agg_trade",
    "binance_mark_price",
    "binance_force_order",
    "binance_open_interest",
    "status",
}


def futures_records(base: Path) -> list[Record]:
    """The recording in receive order at 10 ms apart, numbered in the venue's stream."""
    folder = base / "cryptofeed_usdm_futures"
    snap_body = (folder / f"depth_snapshot_{SYMBOL}.json").read_bytes()
    out: list[Record] = [Status(0, 0, "system", StatusKind.STARTED, "", '{"pid":1}')]
    snapshot_done = False
    snap_id = json.loads(snap_body)["lastUpdateId"]
    for line in (folder / "combined_stream_all.jsonl").read_text().splitlines():
        if "@kline" in line[:40]:
            continue
        rec = parse_venue_message(line, 0, VENUE)
        if getattr(rec, "symbol", None) != SYMBOL:
            continue
        out.append(rec)  # type: ignore[arg-type]
        if not snapshot_done and type(rec) is BinanceFuturesDepth and rec.last_update_id >= snap_id:
            out.append(parse_futures_snapshot(snap_body, VENUE, SYMBOL, 0))
            snapshot_done = True
    out += [
        BinanceMarkPrice(0, 0, VENUE, SYMBOL, 1, "0.01734", "0.01733", "0.01735", "-0.00010000", 2),
        BinanceForceOrder(
            0, 0, VENUE, SYMBOL, 3, "SELL", "LIMIT", "IOC", "100", "0.0172", "0.0172", "FILLED",
            "100", "100", 3,
        ),
        BinanceOpenInterest(0, 0, VENUE, SYMBOL, "123456789", 4),
    ]  # fmt: skip
    seq = {"system": 0, VENUE: 0}
    for i, r in enumerate(out):
        r.recv_ns = T0 + i * 100_000_000  # 100 ms apart: book snapshots every second
        stream = "system" if type(r) is Status else VENUE
        seq[stream] += 1
        r.seq = seq[stream]
    return out


@pytest.fixture
def store(tmp_path: Path, binance_fixtures: Path) -> tuple[Path, list[Record]]:
    records = futures_records(binance_fixtures)
    record_store(tmp_path / "store", records, interval_s=1)
    return tmp_path / "store", records


def test_jsonl_and_csv_name_every_futures_type_with_its_fields(store) -> None:  # type: ignore[no-untyped-def]
    data_dir, records = store
    out = io.StringIO()
    result = replay_range(data_dir, out, UTC, fmt="jsonl")
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert result.records == len(records) == len(rows)
    assert {r["type"] for r in rows} == TYPES
    depth = next(r for r in rows if r["type"] == "binance_futures_depth")
    assert depth["venue"] == VENUE and depth["stream"] == VENUE
    assert {"first_update_id", "last_update_id", "prev_update_id", "transaction_time"} <= set(depth)
    mark = next(r for r in rows if r["type"] == "binance_mark_price")
    assert mark["funding_rate"] == "-0.00010000"
    out = io.StringIO()
    replay_range(data_dir, out, UTC, fmt="csv", symbols=[f"{VENUE}:{SYMBOL}"])
    table = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert {r["type"] for r in table} >= TYPES - {"status"}
    liq = next(r for r in table if r["type"] == "binance_force_order")
    assert (liq["side"], liq["order_status"], liq["average_price"]) == ("SELL", "FILLED", "0.0172")


def test_table_and_parquet_write_every_futures_type(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data_dir, records = store
    out = io.StringIO()
    replay_range(data_dir, out, UTC, fmt="table", kinds=["liquidations", "marks", "open_interest"])
    text = out.getvalue()
    assert "binance-usdm liquidation SELL 100 @ 0.0172" in text
    assert "funding=-0.00010000" in text and "open interest 123456789" in text
    pq = pytest.importorskip("pyarrow.parquet")
    target = tmp_path / "out.parquet"
    replay_range(data_dir, target, UTC, fmt="parquet")
    table = pq.read_table(target)
    assert table.num_rows == len(records)
    types = set(table.column("type").to_pylist())
    assert types == TYPES
    rates = [v for v in table.column("funding_rate").to_pylist() if v is not None]
    assert [str(v) for v in rates] == ["-0.00010000"]


def test_replay_book_and_verify_books_follow_the_pu_rule(store) -> None:  # type: ignore[no-untyped-def]
    data_dir, records = store
    keeper = BookKeeper()
    keeper.apply_all(records)
    key = f"{VENUE}:{SYMBOL}"
    assert keeper.is_valid(key) and keeper.stats.gaps == 0
    end = records[-1].recv_ns + NS
    result = replay_book(data_dir, key, end, UTC)
    assert result.key == key and result.book.valid
    assert result.book.book.levels() == keeper.book(key).levels()
    report = verify_store(data_dir).report
    assert report.pairs > 5 and report.differences == []
    assert report.seq_gaps == {}


def test_replay_book_prints_a_contract_at_its_tick_and_lot_size(store) -> None:  # type: ignore[no-untyped-def]
    from shriven.feeds.binance.streams import Listing
    from shriven.replay import render_book
    from shriven.universe.binance_recorded import record_listings

    data_dir, records = store
    key = f"{VENUE}:{SYMBOL}"
    end = records[-1].recv_ns + NS
    assert replay_book(data_dir, key, end, UTC).places == (None, None)  # no table: the venue's 8
    listing = Listing(SYMBOL, "TRADING", "PERPETUAL", "AKROUSDT", 0, "0.000010", "1", 0)
    record_listings(data_dir, VENUE, [listing])
    result = replay_book(data_dir, key, end, UTC)
    assert result.places == (5, 0)
    text = render_book(result.book, 5, UTC, result.places)
    bid_qty, bid = text.splitlines()[4].split("|")[0].split()
    best = result.book.book.top(1)[0][0]
    assert bid == f"{best[0]:.5f}" and len(bid.partition(".")[2]) == 5
    assert bid_qty == f"{best[1]:.0f}"

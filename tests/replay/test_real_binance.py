"""Replay over real recorded Binance BTCUSDT messages (tests/fixtures, hftbacktest recording):
the REST snapshot, 3,451 diffs (two of them stale) and trades, written through the real store.
Independent oracle: where a bookTicker's update id equals a diff's, the replayed book's best bid
and ask must be the bookTicker's."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from shriven.events import BinanceDepth, Record, Status, StatusKind
from shriven.feeds.binance.parse import parse_depth_snapshot, parse_message
from shriven.replay.books import verify_books
from shriven.replay.reconstruct import book_at
from shriven.replay.store import StoreReader

from .synth import live_book_at, record_store, reference_book_at

KEY = "binance:BTCUSDT"


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def real(binance_fixtures: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    folder = binance_fixtures / "hftbacktest_spot_btcusdt_20240808"
    messages = [json.loads(x) for x in _lines(folder / "depth_diff_BTCUSDT.jsonl")]
    messages += [json.loads(x) for x in _lines(folder / "trade_BTCUSDT.jsonl")]
    messages.sort(key=lambda m: m["data"]["E"])  # receive order ~ event time
    snapshot_body = (folder / "depth_snapshot_BTCUSDT.json").read_text()
    snapshot_id = json.loads(snapshot_body)["lastUpdateId"]
    records: list[Record] = []
    seq = 0
    first_ms = messages[0]["data"]["E"]
    records.append(Status(first_ms * 1_000_000 - 1, 0, "system", StatusKind.STARTED))
    for i, m in enumerate(messages):
        seq += 1
        recv = m["data"]["E"] * 1_000_000 + 3_000_000 + i  # 3 ms after the event, unique
        rec = parse_message(json.dumps(m), recv, seq)
        assert rec is not None
        records.append(rec)
        if (
            type(rec) is BinanceDepth
            and rec.last_update_id >= snapshot_id
            and not any(type(r).__name__ == "BinanceDepthSnapshot" for r in records)
        ):
            # the REST answer arrived after the diffs the feed buffered while fetching it
            seq += 1
            records.append(parse_depth_snapshot(snapshot_body, "BTCUSDT", recv + 1, seq))
    data_dir = tmp_path_factory.mktemp("real_btcusdt")
    session = record_store(data_dir, records, interval_s=60, segment_size=64 * 1024)
    tickers = [json.loads(x)["data"] for x in _lines(folder / "bookTicker_BTCUSDT.jsonl")]
    return data_dir, records, session, tickers


def test_verify_books_passes_on_the_real_recording(real) -> None:  # type: ignore[no-untyped-def]
    data_dir, _records, session, _ = real
    store = StoreReader(data_dir)
    report = verify_books(store.ticks.records(), store.snapshots(), store.restart_times())
    assert len(session.snapshots) >= 4
    assert report.ok and report.pairs == len(session.snapshots) - 1, report.differences


def test_replayed_top_of_book_matches_the_venues_book_ticker(real) -> None:  # type: ignore[no-untyped-def]
    data_dir, records, _session, tickers = real
    recv_of_u = {r.last_update_id: r.recv_ns for r in records if type(r) is BinanceDepth}
    matches = [t for t in tickers if t["u"] in recv_of_u]
    assert len(matches) >= 10
    store = StoreReader(data_dir)
    for t in matches:
        got = book_at(store, KEY, recv_of_u[t["u"]])
        assert got.valid and got.book.update_id == t["u"]
        assert got.book.best_bid() == (float(t["b"]), float(t["B"]))
        assert got.book.best_ask() == (float(t["a"]), float(t["A"]))


def test_book_at_random_instants_equals_the_live_keeper(real) -> None:  # type: ignore[no-untyped-def]
    data_dir, records, _session, _ = real
    store = StoreReader(data_dir)
    rng = random.Random(2)
    independent = 0
    for i in range(25):
        at = rng.randrange(records[0].recv_ns, records[-1].recv_ns)
        live, valid = live_book_at(records, KEY, at)
        got = book_at(store, KEY, at)
        assert got.book == live and got.valid == valid
        if i % 3:
            continue  # the oracle replays from the start each time: a third of the instants
        ref, ref_valid = reference_book_at(records, KEY, at)  # not a BookKeeper
        assert got.valid == ref_valid
        if ref_valid:
            assert got.book.levels() == ref
            independent += 1
    assert independent >= 7

"""The book keeper on real recorded Binance data (see tests/fixtures/binance/PROVENANCE.md).

Independent oracle: a bookTicker message carries the book update id ``u``; wherever a depth diff
ends at that same ``u``, our best bid and ask (price and quantity) must equal the bookTicker's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shriven.book import BookKeeper
from shriven.events import BinanceDepth, BinanceDepthSnapshot, Record
from shriven.feeds.binance.parse import parse_depth_snapshot, parse_message

CRYPTOFEED = "cryptofeed_spot"
HFT = "hftbacktest_spot_btcusdt_20240808"
SYMBOLS = [
    (CRYPTOFEED, "BLZETH", "bookTicker.jsonl"),
    (CRYPTOFEED, "LRCBTC", "bookTicker.jsonl"),
    (CRYPTOFEED, "NKNUSDT", "bookTicker.jsonl"),
    (CRYPTOFEED, "RUNEEUR", "bookTicker.jsonl"),
    (HFT, "BTCUSDT", "bookTicker_BTCUSDT.jsonl"),
]
Top = tuple[float, float, float, float]


def load_diffs(folder: Path, symbol: str) -> list[BinanceDepth]:
    lines = (folder / f"depth_diff_{symbol}.jsonl").read_text().splitlines()
    out = [parse_message(line, i, i) for i, line in enumerate(lines)]
    assert all(isinstance(r, BinanceDepth) for r in out)
    return out  # type: ignore[return-value]


def load_snapshot(folder: Path, symbol: str) -> BinanceDepthSnapshot:
    return parse_depth_snapshot((folder / f"depth_snapshot_{symbol}.json").read_bytes(), symbol, 0)


def load_tickers(path: Path, symbol: str) -> dict[int, Top]:
    out: dict[int, Top] = {}
    for line in path.read_text().splitlines():
        d = json.loads(line)["data"]
        if d["s"] == symbol:
            out[d["u"]] = (float(d["b"]), float(d["B"]), float(d["a"]), float(d["A"]))
    return out


def recorded_order(diffs: list[BinanceDepth], snap: BinanceDepthSnapshot) -> list[Record]:
    """Diffs up to the first one the snapshot does not contain arrive before the snapshot (the
    recorder fetched it a few hundred ms after subscribing), the rest after it."""
    cut = next(i for i, d in enumerate(diffs) if d.last_update_id > snap.last_update_id) + 1
    return [*diffs[:cut], snap, *diffs[cut:]]


def top_of(keeper: BookKeeper, key: str) -> Top:
    book = keeper.book(key)
    assert book is not None
    bid, ask = book.best_bid(), book.best_ask()
    assert bid is not None and ask is not None
    return (bid[0], bid[1], ask[0], ask[1])


@pytest.mark.parametrize(("folder", "symbol", "tickers"), SYMBOLS, ids=[s[1] for s in SYMBOLS])
def test_real_diffs_apply_without_false_gap_and_match_book_ticker(
    binance_fixtures: Path, folder: str, symbol: str, tickers: str
) -> None:
    base = binance_fixtures / folder
    diffs = load_diffs(base, symbol)
    snap = load_snapshot(base, symbol)
    oracle = load_tickers(base / tickers, symbol)
    key = f"binance:{symbol}"
    keeper = BookKeeper()
    checked = 0
    for rec in recorded_order(diffs, snap):
        keeper.apply(rec)
        book = keeper.book(key)
        if not keeper.is_valid(key):
            continue
        assert not book.is_crossed() and not book.is_locked(), f"crossed at {book.update_id}"
        if book.update_id in oracle:
            assert top_of(keeper, key) == oracle[book.update_id], f"at u={book.update_id}"
            checked += 1
    s = keeper.stats
    assert keeper.is_valid(key)
    assert s.gaps == 0 and s.crossed == 0 and s.locked == 0 and s.stale_snapshots == 0
    assert s.snapshots == 1
    assert s.applied + s.stale == len(diffs)
    assert keeper.book(key).update_id == diffs[-1].last_update_id
    # The checker in PROVENANCE.md: applied diffs and final top of book.
    expected_applied = {"BLZETH": 9, "LRCBTC": 13, "NKNUSDT": 149, "RUNEEUR": 1, "BTCUSDT": 3449}
    assert s.applied == expected_applied[symbol]
    # How many diffs end at a bookTicker's u (RUNEEUR has no ticker in the recording).
    assert checked == {"BLZETH": 1, "LRCBTC": 6, "NKNUSDT": 19, "RUNEEUR": 0, "BTCUSDT": 16}[symbol]


def test_btcusdt_final_top_matches_the_provenance_checker(binance_fixtures: Path) -> None:
    base = binance_fixtures / HFT
    keeper = BookKeeper()
    keeper.apply_all(recorded_order(load_diffs(base, "BTCUSDT"), load_snapshot(base, "BTCUSDT")))
    book = keeper.book("binance:BTCUSDT")
    assert book.best_bid()[0] == 61685.99 and book.best_ask()[0] == 61686.0


def test_raw_recording_in_receive_order_matches_every_book_ticker(binance_fixtures: Path) -> None:
    """The hftbacktest recording as received: diffs, trades, bookTickers and the REST answer in
    their real interleaving. A bookTicker usually arrives before the 100 ms diff that ends at its
    ``u``, so each diff is checked against every ticker of the recording."""
    keeper = BookKeeper()
    key = "binance:BTCUSDT"
    lines = (binance_fixtures / HFT / "raw_recording_head_1000_lines.txt").read_text().splitlines()
    oracle: dict[int, Top] = {}
    for line in lines:
        msg = json.loads(line.partition(" ")[2])
        if msg.get("stream", "").endswith("@bookTicker"):
            d = msg["data"]
            oracle[d["u"]] = (float(d["b"]), float(d["B"]), float(d["a"]), float(d["A"]))
    checked = trades = 0
    for line in lines:
        ns_text, _, body = line.partition(" ")
        if '"lastUpdateId"' in body[:20]:
            keeper.apply(parse_depth_snapshot(body, "BTCUSDT", int(ns_text)))
            continue
        if "@bookTicker" in body[:40]:
            continue
        rec = parse_message(body, int(ns_text))
        assert rec is not None
        trades += type(rec).__name__ == "BinanceTrade"
        keeper.apply(rec)
        book = keeper.book(key)
        if type(rec) is BinanceDepth and keeper.is_valid(key) and book.update_id in oracle:
            assert top_of(keeper, key) == oracle[book.update_id], f"at u={book.update_id}"
            checked += 1
    assert keeper.stats.gaps == 0 and keeper.stats.crossed == 0 and keeper.stats.snapshots == 1
    assert checked >= 10 and trades > 0


@pytest.mark.parametrize("symbol", ["NKNUSDT", "BTCUSDT"])
def test_a_diff_removed_from_a_real_sequence_is_a_gap(binance_fixtures: Path, symbol: str) -> None:
    folder = CRYPTOFEED if symbol == "NKNUSDT" else HFT
    diffs = load_diffs(binance_fixtures / folder, symbol)
    snap = load_snapshot(binance_fixtures / folder, symbol)
    records = recorded_order(diffs, snap)
    middle = len(records) // 2
    assert isinstance(records[middle], BinanceDepth)
    removed = records.pop(middle)
    keeper = BookKeeper()
    key = f"binance:{symbol}"
    for i, rec in enumerate(records):
        keeper.apply(rec)
        if i == middle - 1:
            assert keeper.is_valid(key)
            assert keeper.book(key).update_id == removed.first_update_id - 1
        if i == middle:
            assert keeper.stats.gaps == 1 and not keeper.is_valid(key)
    assert keeper.stats.gaps == 1 and not keeper.is_valid(key)
    assert keeper.snapshots(0) == []

"""The futures book rule on real USD-M recordings (tests/fixtures/binance/cryptofeed_usdm_futures,
see PROVENANCE.md): fstream ``@depth@100ms`` diffs with ``pu``, the ``/fapi/v1/depth`` snapshots,
bookTickers and aggTrades of SUSHIUSDT, AKROUSDT, KEEPUSDT and CTKUSDT.

Independent oracle: a futures bookTicker carries the book update id ``u``; wherever a depth diff
ends at that same ``u``, our best bid and ask (price and quantity) must equal the bookTicker's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shriven.book import BookKeeper
from shriven.book.depth_sync import APPLY, GAP, DepthSync, FuturesDepthSync
from shriven.events import (
    BinanceAggTrade,
    BinanceBookTicker,
    BinanceFuturesDepth,
    BinanceFuturesDepthSnapshot,
    Record,
)
from shriven.feeds.binance.parse import BinanceMessageError
from shriven.feeds.binance.streams import parse_futures_snapshot, parse_venue_message

USDM = "cryptofeed_usdm_futures"
VENUE = "binance-usdm"
SYMBOLS = ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"]
Top = tuple[float, float, float, float]
CHECKED = {
    "SUSHIUSDT": 12,
    "AKROUSDT": 7,
    "KEEPUSDT": 13,
    "CTKUSDT": 18,
}  # diffs ending at a ticker u


def load_diffs(base: Path, symbol: str) -> list[BinanceFuturesDepth]:
    lines = (base / USDM / f"depth_diff_{symbol}.jsonl").read_text().splitlines()
    out = [parse_venue_message(line, i, VENUE, i) for i, line in enumerate(lines)]
    assert all(type(r) is BinanceFuturesDepth for r in out)
    return out  # type: ignore[return-value]


def load_snapshot(base: Path, symbol: str) -> BinanceFuturesDepthSnapshot:
    body = (base / USDM / f"depth_snapshot_{symbol}.json").read_bytes()
    return parse_futures_snapshot(body, VENUE, symbol, 0)


def load_tickers(base: Path, symbol: str) -> dict[int, Top]:
    out: dict[int, Top] = {}
    for i, line in enumerate((base / USDM / "bookTicker.jsonl").read_text().splitlines()):
        t = parse_venue_message(line, i, VENUE)
        assert type(t) is BinanceBookTicker
        if t.symbol == symbol:
            out[t.update_id] = (
                float(t.bid_price),
                float(t.bid_quantity),
                float(t.ask_price),
                float(t.ask_quantity),
            )
    return out


def recorded_order(
    diffs: list[BinanceFuturesDepth], snap: BinanceFuturesDepthSnapshot
) -> list[Record]:
    """The diffs the snapshot contains arrive before it (it was fetched a few hundred ms after
    subscribing), then the first one it does not fully contain, then the snapshot, the rest."""
    cut = next(i for i, d in enumerate(diffs) if d.last_update_id >= snap.last_update_id) + 1
    return [*diffs[:cut], snap, *diffs[cut:]]


def top_of(keeper: BookKeeper, key: str) -> Top:
    book = keeper.book(key)
    assert book is not None
    bid, ask = book.best_bid(), book.best_ask()
    assert bid is not None and ask is not None
    return (bid[0], bid[1], ask[0], ask[1])


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_every_real_diff_applies_without_false_gap_and_matches_book_ticker(
    binance_fixtures: Path, symbol: str
) -> None:
    diffs = load_diffs(binance_fixtures, symbol)
    snap = load_snapshot(binance_fixtures, symbol)
    oracle = load_tickers(binance_fixtures, symbol)
    key = f"{VENUE}:{symbol}"
    keeper = BookKeeper()
    checked = 0
    for rec in recorded_order(diffs, snap):
        keeper.apply(rec)
        book = keeper.book(key)
        if keeper.is_valid(key) and book is not None and book.update_id in oracle:
            assert top_of(keeper, key) == oracle[book.update_id], f"at u={book.update_id}"
            checked += 1
    stats = keeper.stats
    assert stats.gaps == 0 and stats.crossed == 0 and stats.snapshots == 1
    assert keeper.is_valid(key)
    assert keeper.book(key).update_id == diffs[-1].last_update_id
    # The provenance checker's counts: diffs dropped as older than the snapshot, the rest applied.
    dropped = {"SUSHIUSDT": 3, "AKROUSDT": 1, "KEEPUSDT": 3, "CTKUSDT": 5}[symbol]
    assert stats.applied == len(diffs) - dropped
    assert checked == CHECKED[symbol]


def test_final_tops_match_the_provenance_checker(binance_fixtures: Path) -> None:
    expected = {
        "SUSHIUSDT": (7.612, 7.616),
        "AKROUSDT": (0.01734, 0.01735),
        "KEEPUSDT": (0.2463, 0.2467),
        "CTKUSDT": (1.011, 1.012),
    }
    for symbol, (bid, ask) in expected.items():
        keeper = BookKeeper()
        keeper.apply_all(
            recorded_order(
                load_diffs(binance_fixtures, symbol), load_snapshot(binance_fixtures, symbol)
            )
        )
        book = keeper.book(f"{VENUE}:{symbol}")
        assert (book.best_bid()[0], book.best_ask()[0]) == (bid, ask)


def test_first_kept_diff_ending_at_last_update_id_is_applied(binance_fixtures: Path) -> None:
    """AKROUSDT's first diff after the stale one ends exactly at the snapshot's lastUpdateId:
    futures keep it (drop only u < lastUpdateId) and it satisfies U <= lastUpdateId <= u."""
    diffs = load_diffs(binance_fixtures, "AKROUSDT")
    snap = load_snapshot(binance_fixtures, "AKROUSDT")
    first = next(d for d in diffs if d.last_update_id >= snap.last_update_id)
    assert first.last_update_id == snap.last_update_id
    assert first.first_update_id <= snap.last_update_id
    sync: FuturesDepthSync[BinanceFuturesDepth] = FuturesDepthSync()
    for d in diffs[: diffs.index(first) + 1]:
        sync.on_diff(d.first_update_id, d.last_update_id, d.prev_update_id, d)
    result = sync.on_snapshot(snap.last_update_id)
    assert result.usable and not result.gap
    assert result.apply == [first] and result.dropped == diffs.index(first)
    nxt = diffs[diffs.index(first) + 1]
    assert nxt.prev_update_id == first.last_update_id
    assert sync.on_diff(nxt.first_update_id, nxt.last_update_id, nxt.prev_update_id, nxt) == APPLY


def test_spot_rule_calls_false_gaps_on_futures_diffs(binance_fixtures: Path) -> None:
    """Why futures need their own rule: futures update ids are shared by every symbol, so
    ``U`` is not the previous ``u`` + 1 and spot's check fails at the second diff."""
    diffs = load_diffs(binance_fixtures, "SUSHIUSDT")
    snap = load_snapshot(binance_fixtures, "SUSHIUSDT")
    spot: DepthSync[None] = DepthSync()
    futures: FuturesDepthSync[None] = FuturesDepthSync()
    spot_gaps = futures_gaps = 0
    for i, d in enumerate(diffs):
        if i == 3:  # after the three the snapshot contains, as recorded
            spot.on_snapshot(snap.last_update_id)
            futures.on_snapshot(snap.last_update_id)
        spot_gaps += spot.on_diff(d.first_update_id, d.last_update_id, None) == GAP
        futures_gaps += (
            futures.on_diff(d.first_update_id, d.last_update_id, d.prev_update_id, None) == GAP
        )
    assert futures_gaps == 0 and futures.live
    assert spot_gaps > 0


@pytest.mark.parametrize("symbol", ["SUSHIUSDT", "CTKUSDT"])
def test_a_diff_removed_from_a_real_sequence_is_a_gap_and_resyncs(
    binance_fixtures: Path, symbol: str
) -> None:
    diffs = load_diffs(binance_fixtures, symbol)
    snap = load_snapshot(binance_fixtures, symbol)
    key = f"{VENUE}:{symbol}"
    records = recorded_order(diffs, snap)
    middle = len(records) // 2
    removed = records.pop(middle)
    assert type(removed) is BinanceFuturesDepth
    keeper = BookKeeper()
    reference = BookKeeper()  # every diff: the truth to resync from
    reference.apply_all(recorded_order(diffs, snap))
    for rec in records[:middle]:
        keeper.apply(rec)
    assert keeper.is_valid(key)
    keeper.apply(records[middle])  # its pu is the removed diff's u
    assert keeper.stats.gaps == 1 and not keeper.is_valid(key)
    # A new snapshot taken where the recording ends: the book resyncs to the truth.
    truth = reference.book(key)
    bids, asks = truth.levels()
    resnap = BinanceFuturesDepthSnapshot(
        0, 0, VENUE, symbol, truth.update_id, 0, 0,
        tuple((f"{p:.10f}", f"{q:.10f}") for p, q in bids),
        tuple((f"{p:.10f}", f"{q:.10f}") for p, q in asks),
    )  # fmt: skip
    for rec in records[middle + 1 :]:
        keeper.apply(rec)
    keeper.apply(resnap)
    assert keeper.is_valid(key) and keeper.stats.snapshots == 2 and keeper.stats.gaps == 1
    assert keeper.book(key).levels() == truth.levels()


def test_combined_recording_parses_every_subscribed_message(binance_fixtures: Path) -> None:
    kinds: dict[str, int] = {}
    lines = (binance_fixtures / USDM / "combined_stream_all.jsonl").read_text().splitlines()
    for i, line in enumerate(lines):
        try:
            rec = parse_venue_message(line, i, VENUE, symbols=set(SYMBOLS))
        except BinanceMessageError as exc:
            kinds[exc.kind] = kinds.get(exc.kind, 0) + 1
            continue
        assert rec is not None and rec.venue == VENUE  # type: ignore[union-attr]
        kinds[type(rec).__name__] = kinds.get(type(rec).__name__, 0) + 1
    assert kinds == {
        "BinanceBookTicker": 613,
        "BinanceFuturesDepth": 764,
        "unexpected_kline": 67,
        "BinanceAggTrade": 91,
    }


def test_agg_trade_fields_as_sent(binance_fixtures: Path) -> None:
    line = (binance_fixtures / USDM / "aggTrade.jsonl").read_text().splitlines()[0]
    rec = parse_venue_message(line, 5, VENUE, 9)
    assert rec == BinanceAggTrade(
        5, 9, VENUE, "CTKUSDT", 16599292, "1.01100", "10", 23961322, 23961322,
        1626992741421, 1626992741575, False,
    )  # fmt: skip

"""The Binance adapter on the futures venues, against the loopback simulator speaking fstream /
dstream and fapi / dapi (``pu``-chained diffs, shared update ids), with faults injected."""

from __future__ import annotations

import asyncio
import random
import time
from itertools import pairwise

from tests.feeds.binance.test_binance_feed import ListSink as SpotSink
from tests.feeds.binance.test_binance_feed import fast_params, wait_for

from shriven.book import BookKeeper
from shriven.events import (
    BinanceAggTrade,
    BinanceBookTicker,
    BinanceForceOrder,
    BinanceFuturesDepth,
    BinanceFuturesDepthSnapshot,
    BinanceMarkPrice,
    BinanceOpenInterest,
    Record,
    Status,
    StatusKind,
    decode_batch,
    encode_batch,
)
from shriven.feeds.binance.feed import BinanceFeed, BinanceFeedParams, connection_report
from shriven.sim.binance import BinanceSimulator

USDM = "binance-usdm"
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


class ListSink(SpotSink):
    def of(self, t: type) -> list[Record]:
        return [r for r in self.records if type(r) is t]


def params(sim: BinanceSimulator, venue: str, **kw: object) -> BinanceFeedParams:
    values: dict = dict(
        venue=venue,
        depth_interval="100ms",
        max_streams_per_connection=10,  # two symbols (5 streams each) per connection
        open_interest_secs=0.2,
    )
    values.update(kw)
    return fast_params(sim, **values)


def assert_books_equal_truth(
    sim: BinanceSimulator, records: list[Record], venue: str, symbols: list[str]
) -> None:
    keeper = BookKeeper()
    keeper.apply_all(records)
    for s in symbols:
        key = f"{venue}:{s}"
        assert keeper.is_valid(key), f"{s} not in sync at the end"
        book = keeper.book(key)
        assert book.levels() == sim.true_book(s, book.update_id), f"{s} differs from the truth"


async def caught_up(sim: BinanceSimulator, sink: ListSink, venue: str, what: str) -> None:
    target = {s: sim.books[s].update_id for s in sim.books}

    def done() -> bool:
        return all(
            sink.keeper.is_valid(f"{venue}:{s}")
            and sink.keeper.book(f"{venue}:{s}").update_id >= target[s]
            for s in target
        )

    await wait_for(done, what)


async def test_usdm_books_equal_the_truth_through_gaps_stale_snapshots_and_cut_connections() -> (
    None
):
    sim = BinanceSimulator(SYMBOLS, seed=21, interval_ms=20, venue=USDM)
    await sim.start()
    sink = ListSink()
    feed = BinanceFeed(params(sim, USDM), SYMBOLS, sink, rng=random.Random(2))
    assert len(feed.shards) == 2
    task = asyncio.create_task(feed.run())
    try:
        await caught_up(sim, sink, USDM, "first sync")
        # Futures ids: a symbol's U is never its previous u + 1 (spot's rule would gap here).
        diffs = [r for r in sink.of(BinanceFuturesDepth) if r.symbol == "BTCUSDT"]
        assert all(b.first_update_id > a.last_update_id + 1 for a, b in pairwise(diffs))

        # A snapshot 60 diffs old predates the withheld diff: the feed must fetch another.
        await wait_for(lambda: len(sim.books["ETHUSDT"].history) > 100, "some history")
        sim.fail_rest(1, 429, retry_after=0.05)
        sim.serve_stale_snapshots(1, lag=60)
        sim.inject_gap("ETHUSDT")
        await wait_for(lambda: feed.stats.gaps >= 1, "gap detected")
        await caught_up(sim, sink, USDM, "sync after gap")

        sim.send_liquidations(2)
        for abrupt in (False, True):
            connects = feed.stats.connections
            await sim.drop_connections(abrupt=abrupt)
            await wait_for(lambda c=connects: feed.stats.connections >= c + 2, "reconnect")
            await caught_up(sim, sink, USDM, "sync after reconnect")
        await wait_for(lambda: len(sink.of(BinanceOpenInterest)) >= 2 * len(SYMBOLS), "OI")
        await wait_for(lambda: len(sink.of(BinanceMarkPrice)) >= len(SYMBOLS), "mark prices")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sim.stop()

    records = sink.records
    assert_books_equal_truth(sim, records, USDM, SYMBOLS)
    replayed = BookKeeper()
    replayed.apply_all(decode_batch(encode_batch(records)))
    for s in SYMBOLS:
        assert replayed.book(f"{USDM}:{s}") == sink.keeper.book(f"{USDM}:{s}")
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    assert all(getattr(r, "venue", USDM) == USDM for r in records)
    for t in (BinanceAggTrade, BinanceBookTicker, BinanceForceOrder, BinanceFuturesDepthSnapshot):
        assert sink.of(t), f"no {t.__name__} recorded"
    gaps = [r for r in records if type(r) is Status and r.kind == StatusKind.GAP]
    assert any(g.instrument == "ETHUSDT" and "pu=" in g.detail for g in gaps)
    stats = feed.stats
    assert stats.errors_by_kind.get("http_429") == 1 and feed.rest.rate_limited == 1
    assert stats.errors_by_kind.get("stale_snapshot", 0) >= 1
    assert feed.rest.used_weight > 0  # the weight header was read
    mark = sink.of(BinanceMarkPrice)[0]
    assert mark.funding_rate and mark.next_funding_time > 0


async def test_coinm_streams_at_the_250ms_name_and_perpetual_and_dated_contracts() -> None:
    symbols = ["BTCUSD_PERP", "BTCUSD_991231"]
    sim = BinanceSimulator(symbols, seed=3, interval_ms=20, venue="binance-coinm")
    await sim.start()
    sink = ListSink()
    p = params(sim, "binance-coinm", depth_interval="250ms", open_interest_secs=0)
    feed = BinanceFeed(p, symbols, sink)
    task = asyncio.create_task(feed.run())
    try:
        await caught_up(sim, sink, "binance-coinm", "first sync")
        await wait_for(lambda: len(sink.of(BinanceMarkPrice)) >= 2, "mark prices")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sim.stop()
    assert_books_equal_truth(sim, sink.records, "binance-coinm", symbols)
    dated = [m for m in sink.of(BinanceMarkPrice) if m.symbol == "BTCUSD_991231"]
    assert dated and all(m.funding_rate == "" and m.next_funding_time == 0 for m in dated)
    control = [e.text for e in sim.ledger if e.kind == "depth"]
    assert control and all(
        '"stream":"btcusd_perp@depth"' in t or '991231@depth"' in t for t in control
    )


def test_dry_run_report_names_the_futures_streams_and_connections() -> None:
    p = BinanceFeedParams(
        venue=USDM, api_root="https://fapi.binance.com", ws_url="wss://fstream.binance.com",
        depth_interval="0ms", max_streams_per_connection=200, open_interest_secs=60,
    )  # fmt: skip
    report = connection_report(p, ["BTCUSDT", "ETHUSDT"])
    assert report.splitlines()[0] == (
        "Binance USD-M futures: 2 symbol(s), 10 streams (depth@0ms, aggTrade, bookTicker, "
        "markPrice, forceOrder) over 1 websocket connection(s) (at most 200 streams each) to "
        "wss://fstream.binance.com; depth snapshots of 1000 levels from https://fapi.binance.com:"
    )
    assert "open interest polled every 60 s" in report


async def test_a_delivered_contract_stops_cleanly_and_its_alias_rolls_to_the_next() -> None:
    current, following = "BTCUSD_670326", "BTCUSD_670625"
    sim = BinanceSimulator(
        ["BTCUSD_PERP", current, following], seed=8, interval_ms=20, venue="binance-coinm"
    )
    await sim.start()
    sink = ListSink()
    alias = "BTCUSD_CURRENT_QUARTER"
    p = params(
        sim,
        "binance-coinm",
        open_interest_secs=0,
        deliveries={current: int(time.time() * 1000) + 1_500},
        aliases={alias: current},
    )
    feed = BinanceFeed(p, ["BTCUSD_PERP", current], sink)
    task = asyncio.create_task(feed.run())
    try:
        await wait_for(
            lambda: all(
                sink.keeper.is_valid(f"binance-coinm:{s}") for s in ("BTCUSD_PERP", current)
            ),
            "first sync",
        )
        sim.delivered.add(current)  # the venue now lists it DELIVERED and the next as current
        await wait_for(lambda: sink.keeper.is_valid(f"binance-coinm:{following}"), "the roll")
        await wait_for(lambda: sink.keeper.is_valid("binance-coinm:BTCUSD_PERP"), "perp again")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sim.stop()
    rolled = [
        r for r in sink.records if type(r) is Status and r.kind == StatusKind.SUBSCRIPTIONS_CHANGED
    ]
    assert len(rolled) == 1 and rolled[0].instrument == current
    assert '"added":["BTCUSD_670625"]' in rolled[0].detail
    assert feed.symbols == ["BTCUSD_PERP", following] and p.aliases[alias] == following
    after = sink.records.index(rolled[0])
    assert not any(getattr(r, "symbol", "") == current for r in sink.records[after + 1 :])
    assert not task.done() or task.cancelled()


async def test_spot_records_agg_trades_and_book_tickers_that_match_its_books() -> None:
    """Spot with the streams added beside futures: every bookTicker at a diff's update id shows
    the best bid and ask of the book the feed keeps (the simulator sends one after each diff)."""
    symbols = ["BTCUSDT", "ETHUSDT"]
    sim = BinanceSimulator(symbols, seed=2, interval_ms=20)
    await sim.start()
    sink = ListSink()
    tops: dict[tuple[str, int], tuple[float, float, float, float]] = {}

    class Oracle(ListSink):
        async def put(self, record: Record) -> None:
            await sink.put(record)
            if type(record) is not BinanceBookTicker:
                key = f"binance:{getattr(record, 'symbol', '')}"
                book = sink.keeper.book(key)
                if book is not None and sink.keeper.is_valid(key) and book.best_bid():
                    bid, ask = book.best_bid(), book.best_ask()
                    tops[(record.symbol, book.update_id)] = (*bid, *ask)  # type: ignore[union-attr]

    p = params(
        sim, "binance", streams=("depth", "trade", "aggTrade", "bookTicker"), open_interest_secs=0
    )
    feed = BinanceFeed(p, symbols, Oracle())
    task = asyncio.create_task(feed.run())
    try:
        await wait_for(lambda: len(sink.of(BinanceBookTicker)) > 60, "tickers")
        await wait_for(lambda: len(sink.of(BinanceAggTrade)) > 5, "aggTrades")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sim.stop()
    checked = 0
    for t in sink.of(BinanceBookTicker):
        top = tops.get((t.symbol, t.update_id))
        if top is not None:
            want = (
                float(t.bid_price),
                float(t.bid_quantity),
                float(t.ask_price),
                float(t.ask_quantity),
            )
            assert top == want, t
            checked += 1
    assert checked > 30
    assert all(r.venue == "binance" for r in sink.of(BinanceAggTrade))
    assert [r.seq for r in sink.records] == list(range(1, len(sink.records) + 1))

"""The Binance adapter against the loopback simulator, with faults injected while it runs."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable

import pytest
import websockets

from shriven.book import BookKeeper
from shriven.errors import ConfigError, VenueError
from shriven.events import (
    BinanceDepthSnapshot,
    BinanceTrade,
    Record,
    Status,
    StatusKind,
    decode_batch,
    encode_batch,
)
from shriven.feeds.binance.feed import (
    MAX_MESSAGE_BYTES,
    BinanceFeed,
    BinanceFeedParams,
    build_binance_feed,
    connection_plan,
    shard_streams,
    stream_names,
    stream_url,
    subscribe_messages,
)
from shriven.feeds.binance.rest import SnapshotClient
from shriven.sim.binance import BinanceSimulator

SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT"]


class ListSink:
    """The pipeline's place in these tests: keeps every record, and a live book keeper."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.keeper = BookKeeper()

    async def put(self, record: Record) -> None:
        self.records.append(record)
        self.keeper.apply(record)

    def statuses(self, kind: str) -> list[Status]:
        return [r for r in self.records if type(r) is Status and r.kind == kind]

    def all_valid(self) -> bool:
        return all(self.keeper.is_valid(f"binance:{s}") for s in SYMBOLS)


async def wait_for(cond: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def caught_up(sim: BinanceSimulator, sink: ListSink, what: str) -> None:
    """Every symbol's live book is in sync and has reached the simulator's current update id."""
    target = {s: sim.books[s].update_id for s in SYMBOLS}

    def done() -> bool:
        for s in SYMBOLS:
            key = f"binance:{s}"
            if not sink.keeper.is_valid(key) or sink.keeper.book(key).update_id < target[s]:
                return False
        return True

    await wait_for(done, what)


def fast_params(sim: BinanceSimulator, **kw: object) -> BinanceFeedParams:
    """Parameters pointing at ``sim``, with reconnects, stalls and retries made short enough
    for a test; ``kw`` overrides (the futures tests share these)."""
    values: dict = dict(
        api_root=sim.base_url,
        ws_url=sim.ws_url,
        max_streams_per_connection=4,  # two symbols per connection: BNBUSDT gets its own
        reconnect_initial_secs=0.05,
        reconnect_max_secs=0.2,
        stall_secs=0.6,
        rest_max_backoff_secs=0.3,
        stale_snapshot_retry_secs=0.05,
    )
    values.update(kw)
    return BinanceFeedParams(**values)


def assert_books_equal_truth(sim: BinanceSimulator, records: list[Record]) -> None:
    keeper = BookKeeper()  # rebuilt from the records alone, as replay would
    keeper.apply_all(records)
    for s in SYMBOLS:
        key = f"binance:{s}"
        assert keeper.is_valid(key), f"{s} not in sync at the end"
        book = keeper.book(key)
        assert book.levels() == sim.true_book(s, book.update_id), f"{s} differs from the truth"
    assert keeper.stats.crossed == 0 and keeper.stats.locked == 0


async def test_books_equal_the_true_books_after_gaps_disconnects_and_bad_input() -> None:
    sim = BinanceSimulator(SYMBOLS, seed=11, interval_ms=20)
    await sim.start()
    sink = ListSink()
    feed = BinanceFeed(fast_params(sim), SYMBOLS, sink, rng=random.Random(3))
    assert len(feed.shards) == 2
    task = asyncio.create_task(feed.run())
    try:
        await wait_for(sink.all_valid, "first sync")
        assert_books_equal_truth(sim, sink.records)

        # A withheld diff: a gap on one symbol, a 429 and then a stale snapshot on its resync.
        # lag: 100 diffs (2 s) before the resync's request, so even a resync slowed by a loaded
        # machine gets a snapshot from before the withheld diff, which must be refused as stale.
        await wait_for(lambda: len(sim.books["ETHUSDT"].history) > 120, "some history")
        sim.fail_rest(1, 429, retry_after=0.05)
        sim.serve_stale_snapshots(1, lag=100)
        sim.inject_gap("ETHUSDT")
        await wait_for(lambda: feed.stats.gaps >= 1, "gap detected")
        await wait_for(lambda: len(sink.statuses(StatusKind.RESYNCED)) >= 4, "resync after gap")
        await caught_up(sim, sink, "sync after gap")
        gaps = sink.statuses(StatusKind.GAP)
        assert any(
            g.instrument == "ETHUSDT" and json.loads(g.detail)["reason"].startswith("sequence")
            for g in gaps
        )

        # Bad input on the stream.
        sim.send_malformed()
        sim.send_unknown()
        await wait_for(lambda: "unexpected_bookTicker" in feed.stats.errors_by_kind, "unknown")
        await wait_for(lambda: "malformed_json" in feed.stats.errors_by_kind, "malformed")

        # The venue closes every connection (as at the 24 h mark), then drops them abruptly.
        for abrupt in (False, True):
            connects = feed.stats.connections
            await sim.drop_connections(abrupt=abrupt)
            await wait_for(lambda c=connects: feed.stats.connections >= c + 2, "reconnect")
            await caught_up(sim, sink, "sync after reconnect")

        # A stalled stream: the feed notices the silence and reconnects.
        connects = feed.stats.connections
        sim.stall(3.0)
        gaps = feed.stats.gaps
        await wait_for(lambda: feed.stats.connections >= connects + 2, "reconnect after stall")
        # 3 s of diffs were never sent: every symbol sees the hole and resyncs.
        await wait_for(lambda: feed.stats.gaps >= gaps + len(SYMBOLS), "gaps after stall")
        await caught_up(sim, sink, "sync after stall")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sim.stop()

    records = sink.records
    assert_books_equal_truth(sim, records)
    # Replay sees what the WAL codec gives back; its books equal the live keeper's.
    replayed = BookKeeper()
    replayed.apply_all(decode_batch(encode_batch(records)))
    for s in SYMBOLS:
        key = f"binance:{s}"
        assert replayed.book(key) == sink.keeper.book(key)
        assert replayed.book(key).update_id == sink.keeper.book(key).update_id
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    stats = feed.stats
    assert stats.errors_by_kind.get("http_429") == 1
    assert stats.errors_by_kind.get("stale_snapshot", 0) >= 1
    assert stats.errors_by_kind["malformed_json"] >= 1
    assert stats.reconnects >= 6 and stats.gaps >= 1 + len(SYMBOLS)
    assert stats.records == len(records)
    refusal = json.loads(sink.statuses(StatusKind.VENUE_MESSAGE)[0].detail)
    assert refusal["type"] == "http_error" and refusal["status"] == 429
    assert refusal["message"].startswith("code -1003")
    assert len(sink.statuses(StatusKind.DISCONNECTED)) >= 6
    # Stopping the feed closes each shard's stream in the data too.
    closed = [json.loads(s.detail) for s in sink.statuses(StatusKind.DISCONNECTED)]
    stopped = [d for d in closed if d["reason"] == "stopped"]
    assert sorted(d["shard"] for d in stopped) == list(range(len(feed.shards)))
    assert len(stopped) == len(feed.shards)
    assert all(type(r) is Status for r in records[-len(feed.shards) :])
    # Trades reach the sink once each, and only trades the simulator sent.
    sent = {(d["s"], d["t"]) for e in sim.ledger if e.kind == "trade" for d in [_data(e.text)]}
    got = [(r.symbol, r.trade_id) for r in records if type(r) is BinanceTrade]
    assert len(got) == len(set(got)) > 0 and set(got) <= sent
    # Only snapshots that were used are recorded: one per RESYNCED marker.
    snaps = [r for r in records if type(r) is BinanceDepthSnapshot]
    assert len(snaps) == len(sink.statuses(StatusKind.RESYNCED))


def _data(text: str) -> dict:
    return json.loads(text)["data"]


async def test_quiet_symbol_gets_a_book_and_a_requested_resync_restarts_one() -> None:
    sim = BinanceSimulator(["BTCUSDT", "XRPUSDT"], seed=4, interval_ms=20, quiet=["XRPUSDT"])
    await sim.start()
    sink = ListSink()
    params = fast_params(sim, quiet_snapshot_secs=0.3)
    feed = BinanceFeed(params, ["BTCUSDT", "XRPUSDT"], sink)
    task = asyncio.create_task(feed.run())
    try:
        await wait_for(lambda: sink.keeper.is_valid("binance:XRPUSDT"), "quiet symbol book")
        await wait_for(lambda: sink.keeper.is_valid("binance:BTCUSDT"), "busy symbol book")
        resyncs = feed.stats.resyncs
        await feed.request_resync("btcusdt", "queue dropped records")
        assert not sink.keeper.is_valid("binance:BTCUSDT")
        await wait_for(lambda: feed.stats.resyncs > resyncs, "requested resync")
        await wait_for(lambda: sink.keeper.is_valid("binance:BTCUSDT"), "book after resync")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sim.stop()
    xrp = sink.keeper.book("binance:XRPUSDT")
    assert xrp.levels() == sim.true_book("XRPUSDT", xrp.update_id)
    btc = sink.keeper.book("binance:BTCUSDT")
    assert btc.levels() == sim.true_book("BTCUSDT", btc.update_id)
    requested = [
        g
        for g in sink.statuses(StatusKind.GAP)
        if json.loads(g.detail) == {"reason": "queue dropped records"}
    ]
    assert [g.instrument for g in requested] == ["BTCUSDT"]


async def test_snapshot_client_backs_off_on_rate_limits_and_reports_the_venue_message() -> None:
    sim = BinanceSimulator(["BTCUSDT"], seed=1, interval_ms=50)
    await sim.start()
    seen: list[tuple[str, int, str]] = []
    client = SnapshotClient(
        sim.base_url, limit=10, initial_backoff=0.01, max_backoff=0.1,
        on_venue_error=lambda *a: seen.append(a),
    )  # fmt: skip
    try:
        sim.fail_rest(1, 429, retry_after=0.05)
        sim.fail_rest(1, 418, retry_after=0.05)
        sim.fail_rest(1, 503, retry_after=0.05)
        body, recv_ns = await asyncio.wait_for(client.fetch("BTCUSDT"), 10)
        assert b"lastUpdateId" in body and recv_ns > 0
        assert [s for _, s, _ in seen] == [429, 418, 503]
        assert "Too many requests" in seen[0][2]
        assert client.retries == 3
        with pytest.raises(VenueError, match="HTTP 400"):
            await asyncio.wait_for(client.fetch("NOPE"), 10)
    finally:
        await client.close()
        await sim.stop()


def test_streams_are_sharded_under_the_per_connection_limit() -> None:
    symbols = [f"S{i}USDT" for i in range(1500)]
    shards = shard_streams(symbols, 1024)
    assert [len(s) for s in shards] == [512, 512, 476]
    assert [s for shard in shards for s in shard] == symbols
    url = stream_url("wss://stream.binance.com:9443", ["BTCUSDT", "ETHUSDT"])
    assert url == (
        "wss://stream.binance.com:9443/stream?streams="
        "btcusdt@depth@100ms/btcusdt@trade/ethusdt@depth@100ms/ethusdt@trade"
    )
    assert stream_url("ws://x", ["A"], "1000ms") == "ws://x/stream?streams=a@depth/a@trade"


def test_feed_is_built_from_settings() -> None:
    from shriven.config import load_settings

    settings = load_settings(
        binance_symbols="btcusdt,ethusdt", binance_api_root="http://127.0.0.1:1"
    )
    feed = build_binance_feed(settings, ListSink())
    assert feed.symbols == ["BTCUSDT", "ETHUSDT"] and feed.params.depth_limit == 1000
    assert feed.params.api_root == "http://127.0.0.1:1"
    with pytest.raises(ConfigError, match="SHRIVEN_BINANCE_SYMBOLS"):
        build_binance_feed(load_settings(binance_symbols=""), ListSink())


def test_streams_beyond_the_url_budget_are_left_for_subscribe_messages() -> None:
    symbols = [f"SYM{i:03d}USDT" for i in range(500)]
    url, later = connection_plan("wss://stream.binance.com:9443", symbols, "100ms", 4096)
    assert len(url) <= 4096
    in_url = url.split("streams=", 1)[1].split("/")
    assert in_url + later == stream_names(symbols)  # every stream once, in order
    assert later  # 1000 streams do not fit in 4 KiB
    messages = [json.loads(m) for m in subscribe_messages(later, 200)]
    assert [m["id"] for m in messages] == list(range(1, len(messages) + 1))
    assert all(m["method"] == "SUBSCRIBE" and len(m["params"]) <= 200 for m in messages)
    assert [n for m in messages for n in m["params"]] == later
    # A short list stays wholly in the URL, as before.
    assert connection_plan("ws://x", ["BTCUSDT"]) == (stream_url("ws://x", ["BTCUSDT"]), [])


async def test_a_long_symbol_list_subscribes_by_message_within_the_rate_limit() -> None:
    sim = BinanceSimulator(SYMBOLS, seed=5, interval_ms=20)
    await sim.start()
    sink = ListSink()
    # Only the first stream fits in the URL; five more SUBSCRIBE messages of one stream each,
    # more than the venue's 5 messages a second if they were not spaced.
    params = fast_params(sim, max_streams_per_connection=6, url_max_chars=1, subscribe_batch=1)
    feed = BinanceFeed(params, SYMBOLS, sink, rng=random.Random(3))
    assert len(feed.shards) == 1
    task = asyncio.create_task(feed.run())
    try:
        await wait_for(sink.all_valid, "every symbol in sync", timeout=30)
        await wait_for(
            lambda: {r.symbol for r in sink.records if type(r) is BinanceTrade} == set(SYMBOLS),
            "trades of every symbol",
            timeout=30,
        )
        await caught_up(sim, sink, "books caught up")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sim.stop()
    assert sim.subscribe_requests == 5
    assert sim.rate_limited == 0 and feed.stats.reconnects == 0
    assert_books_equal_truth(sim, sink.records)


async def test_the_simulator_closes_a_connection_that_sends_too_fast() -> None:
    sim = BinanceSimulator(["BTCUSDT"], seed=5)
    await sim.start()
    try:
        async with websockets.connect(f"{sim.ws_url}/stream") as ws:
            for i in range(6):
                await ws.send(json.dumps({"method": "SUBSCRIBE", "params": [], "id": i}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                for _ in range(10):
                    await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    finally:
        await sim.stop()
    assert sim.rate_limited == 1


class FailOnceSink(ListSink):
    """A consumer that raises once, on the first trade (a bug downstream of the feed, met on
    the receive path)."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def put(self, record: Record) -> None:
        if type(record) is BinanceTrade and not self.failed:
            self.failed = True
            raise RuntimeError("a bug downstream")
        await super().put(record)


async def test_an_unexpected_exception_restarts_the_connection_not_the_feed() -> None:
    sim = BinanceSimulator(SYMBOLS, seed=4, interval_ms=20)
    await sim.start()
    sink = FailOnceSink()
    feed = BinanceFeed(fast_params(sim), SYMBOLS, sink, rng=random.Random(1))
    task = asyncio.create_task(feed.run())
    try:
        await wait_for(lambda: feed.stats.task_restarts == 1, "the restart")
        await wait_for(lambda: feed.stats.connections >= 3, "the reconnect")
        await caught_up(sim, sink, "books after the restart")
        assert not task.done()
        assert feed.stats.errors_by_kind.get("internal_error") == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sim.stop()
    assert_books_equal_truth(sim, sink.records)


async def test_a_frame_over_the_size_limit_is_a_reconnect_not_unbounded_memory() -> None:
    # max_size=None let one frame of any size be buffered whole: a broken proxy could send GBs.
    sim = BinanceSimulator(SYMBOLS, seed=6, interval_ms=20)
    await sim.start()
    sink = ListSink()
    # A 16 MiB frame can take longer than the usual 0.6 s stall limit to arrive on a loaded
    # machine; the stall would then be the reason for the reconnect, not the frame's size.
    feed = BinanceFeed(fast_params(sim, stall_secs=30.0), SYMBOLS, sink, rng=random.Random(1))
    task = asyncio.create_task(feed.run())
    try:
        await caught_up(sim, sink, "initial books")
        connections = feed.stats.connections
        sim.send_raw(['{"x":"' + "a" * MAX_MESSAGE_BYTES + '"}'])
        await wait_for(lambda: feed.stats.connections > connections, "the reconnect")
        await caught_up(sim, sink, "books after the reconnect")
        assert feed.stats.errors_by_kind.get("message_too_large", 0) >= 1
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sim.stop()
    assert_books_equal_truth(sim, sink.records)

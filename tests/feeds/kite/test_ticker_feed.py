"""KiteTickerFeed against the loopback ticker: subscriptions, live changes, reconnects,
refused tokens, malformed input; every packet the simulator sent arrives exactly once."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from shriven.errors import CredentialsError, TickerLimitError
from shriven.events import KiteTick, Record, Status, StatusKind
from shriven.feeds.kite.ticker import KiteTickerFeed, instrument_class, modes_for
from shriven.sim.kite_ticker import KiteTickerSimulator

NSE, NFO, INDEX, NFO2 = (101 << 8) | 1, (202 << 8) | 2, (256 << 8) | 9, (303 << 8) | 2
TOKEN = "sim_access_token"


class ListSink:
    def __init__(self) -> None:
        self.records: list[Record] = []

    async def put(self, record: Record) -> None:
        self.records.append(record)

    def ticks(self, token: int | None = None) -> list[KiteTick]:
        return [
            r
            for r in self.records
            if type(r) is KiteTick and (token is None or r.instrument_token == token)
        ]

    def statuses(self, kind: str | None = None) -> list[Status]:
        return [r for r in self.records if type(r) is Status and kind in (None, r.kind)]


async def until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@pytest.fixture
async def sim() -> AsyncIterator[KiteTickerSimulator]:
    s = KiteTickerSimulator(seed=2, ticks_per_second=3_000, heartbeat_interval=0.1)
    s.url = await s.start()  # type: ignore[attr-defined]
    yield s
    await s.stop()


def make_feed(
    sim: KiteTickerSimulator,
    sink: ListSink,
    subscriptions: dict[int, str],
    provider: Callable[..., str] = lambda refresh=False: TOKEN,
    **kw: float,
) -> KiteTickerFeed:
    kw = {
        "heartbeat_timeout_secs": 10.0,
        "reconnect_min_secs": 0.05,
        "reconnect_max_secs": 0.2,
    } | kw
    return KiteTickerFeed(
        sim.url,  # type: ignore[attr-defined]
        sim.api_key,
        provider,
        sink,
        subscriptions=subscriptions,
        **kw,  # type: ignore[arg-type]
    )


class Running:
    """``async with Running(feed)``: run() in a task, cancelled and awaited on exit."""

    def __init__(self, feed: KiteTickerFeed) -> None:
        self.feed = feed
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> asyncio.Task[None]:
        self.task = asyncio.create_task(self.feed.run())
        return self.task

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def settle(sim: KiteTickerSimulator, sink: ListSink) -> None:
    """Stop the simulator sending and wait until everything it sent has been recorded, so a
    test can stop the feed without packets in flight."""
    sim.stall()
    await until(lambda: all(len(sink.ticks(t)) >= len(sent) for t, sent in sim.ledger.items()))


def assert_exactly_once(sim: KiteTickerSimulator, sink: ListSink) -> int:
    """Per token, the ticks recorded are exactly the packets the simulator sent, in order,
    and every tick sits between a CONNECTED and the following DISCONNECTED record."""
    assert sim.ledger
    for token, sent in sim.ledger.items():
        got = [dataclasses.replace(t, recv_ns=0, seq=0) for t in sink.ticks(token)]
        assert got == [p.tick for p in sent], f"token {token}"
    connected = 0
    for r in sink.records:
        if type(r) is Status and r.kind == StatusKind.CONNECTED:
            connected += 1
        elif type(r) is Status and r.kind == StatusKind.DISCONNECTED:
            connected -= 1
        elif type(r) is KiteTick:
            assert connected > 0
    seqs = [r.seq for r in sink.records]
    assert seqs == list(range(1, len(seqs) + 1))
    return sum(len(s) for s in sim.ledger.values())


async def test_the_tick_tap_sees_every_parsed_tick_before_the_sink(
    sim: KiteTickerSimulator,
) -> None:
    sink = ListSink()
    tapped: list[KiteTick] = []
    sink_size_at_tap: list[int] = []

    def tap(ticks: Sequence[KiteTick]) -> None:
        sink_size_at_tap.append(len(sink.ticks()))
        tapped.extend(ticks)

    feed = make_feed(sim, sink, {NSE: "full", INDEX: "ltp"}, on_ticks=tap)  # type: ignore[arg-type]
    async with Running(feed):
        await until(lambda: len(sink.ticks(INDEX)) > 20)
        await settle(sim, sink)
    ticks = sink.ticks()
    assert tapped == ticks and all(a is b for a, b in zip(tapped, ticks, strict=True))
    # each message's ticks reach the tap before the sink
    assert sink_size_at_tap == sorted(sink_size_at_tap) and sink_size_at_tap[0] == 0


async def test_subscribes_with_modes_and_records_every_tick_once(sim: KiteTickerSimulator) -> None:
    sink = ListSink()
    feed = make_feed(sim, sink, {NSE: "full", NFO: "quote", INDEX: "ltp"})
    async with Running(feed):
        await until(lambda: all(len(sink.ticks(t)) > 20 for t in (NSE, NFO, INDEX)))
        await settle(sim, sink)
    assert sim.control_log[:3] == [
        (1, {"a": "subscribe", "v": [NSE, NFO, INDEX]}),
        (1, {"a": "mode", "v": ["full", [NSE]]}),
        (1, {"a": "mode", "v": ["quote", [NFO]]}),
    ]
    assert {t.mode for t in sink.ticks(NSE)[-5:]} == {"full"}
    assert {t.mode for t in sink.ticks(INDEX)[-5:]} == {"ltp"}
    assert len(sink.ticks(NSE)[-1].bids) == 5
    assert [s.kind for s in sink.statuses()] == ["connected", "disconnected"]
    assert assert_exactly_once(sim, sink) == len(sink.ticks()) == feed.stats.records - 2
    assert feed.stats.connections == 1 and feed.stats.parse_errors == 0


async def test_mode_change_and_recentring_apply_on_the_live_connection(
    sim: KiteTickerSimulator,
) -> None:
    sink = ListSink()
    feed = make_feed(sim, sink, {NSE: "quote", NFO: "full"})
    async with Running(feed):
        await until(lambda: len(sink.ticks(NFO)) > 10)
        # re-centre: drop NFO, add NFO2 and INDEX, and switch NSE to full
        await feed.update_subscriptions({NFO2: "full", INDEX: "quote", NSE: "full"}, [NFO])
        await until(lambda: sim.subscriptions() == {1: {NSE: "full", NFO2: "full", INDEX: "quote"}})
        settled = {t: len(sim.ledger_for(t)) for t in (NSE, NFO)}
        await until(lambda: len(sink.ticks(NFO2)) > 10 and len(sink.ticks(NSE)) > settled[NSE] + 5)
        await settle(sim, sink)
    assert sim.connections_opened == 1 and feed.stats.connections == 1
    assert len(sim.ledger_for(NFO)) == settled[NFO]  # nothing after the unsubscribe
    assert sink.ticks(NSE)[-1].mode == "full" and sink.ticks(INDEX)[-1].mode == "quote"
    (change,) = sink.statuses(StatusKind.SUBSCRIPTIONS_CHANGED)
    assert json.loads(change.detail) | {"shards": None} == {
        "subscribe": sorted([NFO2, INDEX, NSE]),
        "unsubscribe": [NFO],
        "modes": {"full": sorted([NFO2, NSE]), "quote": [INDEX]},
        "shards": None,
    }
    assert feed.subscriptions == {NSE: "full", NFO2: "full", INDEX: "quote"}
    assert_exactly_once(sim, sink)


async def test_dropped_connection_reconnects_and_resubscribes_everything(
    sim: KiteTickerSimulator,
) -> None:
    sink = ListSink()
    feed = make_feed(sim, sink, {NSE: "full", NFO: "ltp"})
    async with Running(feed):
        await until(lambda: len(sink.ticks()) > 50)
        await sim.drop_connections()
        await until(lambda: sim.connections_opened == 2 and sim.live_connections == 1)
        await feed.update_subscriptions({INDEX: "full"}, [])
        await until(lambda: len(sink.ticks(INDEX)) > 10)
        await sim.drop_connections()
        await until(lambda: sim.connections_opened == 3)
        mark = len(sink.ticks())
        await until(lambda: len(sink.ticks()) > mark + 50)
        await settle(sim, sink)
    kinds = [s.kind for s in sink.statuses() if s.kind != StatusKind.SUBSCRIPTIONS_CHANGED]
    assert kinds == ["connected", "disconnected"] * 3
    third = [m for c, m in sim.control_log if c == 3]
    assert third == [
        {"a": "subscribe", "v": [NSE, NFO, INDEX]},
        {"a": "mode", "v": ["full", [NSE, INDEX]]},
        {"a": "mode", "v": ["ltp", [NFO]]},
    ]
    assert feed.stats.reconnects == 2
    assert_exactly_once(sim, sink)


async def test_silence_past_the_heartbeat_timeout_forces_a_reconnect(
    sim: KiteTickerSimulator,
) -> None:
    sink = ListSink()
    feed = make_feed(sim, sink, {NSE: "full"}, heartbeat_timeout_secs=1.0)
    async with Running(feed):
        await until(lambda: len(sink.ticks()) > 20)
        sim.stall()
        await until(lambda: len(sink.statuses(StatusKind.DISCONNECTED)) == 1)
        sim.resume()
        await until(lambda: len(sink.statuses(StatusKind.CONNECTED)) == 2)
        mark = len(sink.ticks())
        await until(lambda: len(sink.ticks()) > mark + 20)
        await settle(sim, sink)
    reason = json.loads(sink.statuses(StatusKind.DISCONNECTED)[0].detail)["reason"]
    assert reason == "no data and no heartbeat for 1s"
    assert_exactly_once(sim, sink)


async def test_idle_heartbeats_keep_the_connection(sim: KiteTickerSimulator) -> None:
    sink = ListSink()
    feed = make_feed(sim, sink, {NSE: "ltp"}, heartbeat_timeout_secs=2.0)
    async with Running(feed):
        await until(lambda: len(sink.ticks()) > 0)
        await feed.update_subscriptions({}, [NSE])
        await until(lambda: sim.subscriptions() == {1: {}})
        mark = feed.stats.messages
        await until(lambda: feed.stats.messages > mark + 25)  # > 2.5 s of 0.1 s heartbeats
    assert sim.connections_opened == 1 and sim.heartbeats_sent > 25


async def test_malformed_packets_are_counted_and_the_rest_recorded(
    sim: KiteTickerSimulator,
) -> None:
    sink = ListSink()
    feed = make_feed(sim, sink, {NSE: "full", NFO: "quote"})
    async with Running(feed):
        await until(lambda: len(sink.ticks()) > 20)
        kinds = ("bad_length", "count_overrun", "trailing_bytes")
        for n, kind in enumerate(kinds, 1):
            sim.send_malformed(kind)  # type: ignore[arg-type]
            await until(lambda n=n: feed.stats.parse_errors == n)  # type: ignore[misc]
        mark = len(sink.ticks())
        await until(lambda: len(sink.ticks()) > mark + 20)
        await settle(sim, sink)
    assert feed.stats.errors_by_kind == {
        "kite_packet_length": 1,
        "kite_truncated": 1,
        "kite_trailing_bytes": 1,
    }
    assert sim.connections_opened == 1
    assert_exactly_once(sim, sink)


async def test_text_messages_are_recorded_as_venue_messages(sim: KiteTickerSimulator) -> None:
    sink = ListSink()
    feed = make_feed(sim, sink, {NSE: "ltp"})
    async with Running(feed):
        await until(lambda: feed.stats.connected and len(sink.ticks()) > 0)
        sim.send_text({"type": "order", "data": {"order_id": "7", "status": "COMPLETE"}})
        await until(lambda: bool(sink.statuses(StatusKind.VENUE_MESSAGE)))
    (message,) = sink.statuses(StatusKind.VENUE_MESSAGE)
    assert json.loads(message.detail)["data"]["order_id"] == "7"


async def test_refused_token_triggers_one_fresh_login(sim: KiteTickerSimulator) -> None:
    calls: list[bool] = []

    def provider(refresh: bool = False) -> str:
        calls.append(refresh)
        return TOKEN if refresh else "expired-token"

    sink = ListSink()
    feed = make_feed(sim, sink, {NSE: "full"}, provider=provider)
    async with Running(feed):
        await until(lambda: len(sink.ticks()) > 5)
    assert calls == [False, True]
    assert sim.rejected == 1


async def test_shards_refused_together_log_in_once() -> None:
    sim = KiteTickerSimulator(seed=6, ticks_per_second=500, max_tokens_per_connection=2)
    sim.url = await sim.start()  # type: ignore[attr-defined]
    calls: list[bool] = []

    async def provider(refresh: bool = False) -> str:
        calls.append(refresh)
        await asyncio.sleep(0.05)  # a login takes a while; the other shards wait for it
        return TOKEN if refresh else "expired-token"

    try:
        tokens = [(500 + i) << 8 | 1 for i in range(5)]
        sink = ListSink()
        feed = make_feed(sim, sink, dict.fromkeys(tokens, "ltp"), provider=provider,
                         max_tokens_per_connection=2)  # fmt: skip
        assert feed.shard_count == 3
        async with Running(feed):
            await until(lambda: all(sink.ticks(t) for t in tokens))
        assert calls == [False, True]
        assert 1 <= sim.rejected <= 3  # each shard that tried the expired token
    finally:
        await sim.stop()


async def test_token_refused_after_a_fresh_login_is_a_clear_error(
    sim: KiteTickerSimulator,
) -> None:
    calls: list[bool] = []

    async def provider(refresh: bool = False) -> str:
        calls.append(refresh)
        return "still-bad"

    feed = make_feed(sim, ListSink(), {NSE: "full"}, provider=provider)
    with pytest.raises(CredentialsError, match="even after a fresh login"):
        async with asyncio.timeout(30):
            await feed.run()
    assert calls == [False, True] and sim.rejected == 2


async def test_large_universes_shard_across_connections() -> None:
    sim = KiteTickerSimulator(seed=4, ticks_per_second=2_000, max_tokens_per_connection=3)
    sim.url = await sim.start()  # type: ignore[attr-defined]
    try:
        tokens = [(100 + i) << 8 | 1 for i in range(7)]
        sink = ListSink()
        feed = make_feed(sim, sink, dict.fromkeys(tokens[:5], "full"), max_tokens_per_connection=3)
        assert feed.shard_count == 2
        async with Running(feed):
            await until(lambda: sim.live_connections == 2)
            await feed.update_subscriptions(dict.fromkeys(tokens[5:], "quote"), [])
            await until(lambda: sim.live_connections == 3)
            await until(lambda: all(len(sink.ticks(t)) > 5 for t in tokens))
            with pytest.raises(
                TickerLimitError, match="10 instruments exceeds the limit of 3 conn"
            ):
                await feed.update_subscriptions(dict.fromkeys((997, 998, 999), "ltp"), [])
            assert len(feed.subscriptions) == 7  # nothing changed
            per_connection = sim.subscriptions()
            await settle(sim, sink)
        assert sorted(len(m) for m in per_connection.values()) == [1, 3, 3]
        assert {t for m in per_connection.values() for t in m} == set(tokens)
        assert_exactly_once(sim, sink)
    finally:
        await sim.stop()


def test_too_many_instruments_fail_before_connecting() -> None:
    with pytest.raises(TickerLimitError, match="9001 instruments exceeds"):
        KiteTickerFeed(
            "ws://127.0.0.1:9/",
            "key",
            lambda refresh=False: "t",
            ListSink(),
            subscriptions=dict.fromkeys(range(1, 9002), "full"),
        )


def test_modes_per_instrument_class() -> None:
    classes = {
        "index": [instrument_class("", "INDICES")],
        "option": [instrument_class("CE", "NFO-OPT")],
        "future": [instrument_class("FUT", "NFO-FUT")],
        "equity": [instrument_class("EQ", "NSE")],
    }
    assert classes == {
        "index": ["index"],
        "option": ["option"],
        "future": ["future"],
        "equity": ["equity"],
    }
    modes = modes_for({"index": [1], "option": [2, 3], "equity": [4]}, "full", {"option": "quote"})
    assert modes == {1: "full", 2: "quote", 3: "quote", 4: "full"}


def test_feed_from_settings_takes_endpoint_key_modes_and_bounds() -> None:
    from shriven.config import load_settings

    settings = load_settings(
        ZERODHA_API_KEY="k",
        kite_ws_url="ws://127.0.0.1:1/ws",
        kite_ticker_mode="quote",
        kite_ticker_class_modes={"index": "full"},
        kite_heartbeat_timeout_secs=3.0,
    )
    feed = KiteTickerFeed.from_settings(settings, lambda refresh=False: "t", ListSink())
    assert (feed.ws_url, feed.heartbeat_timeout_secs) == ("ws://127.0.0.1:1/ws", 3.0)
    assert feed.modes_for({"index": [9], "option": [2]}) == {9: "full", 2: "quote"}


def test_feed_from_settings_needs_the_api_key() -> None:
    from shriven.config import load_settings

    with pytest.raises(CredentialsError, match="ZERODHA_API_KEY"):
        KiteTickerFeed.from_settings(
            load_settings(ZERODHA_API_KEY=""), lambda refresh=False: "t", ListSink()
        )


async def test_changes_before_run_are_sent_on_connect(sim: KiteTickerSimulator) -> None:
    sink = ListSink()
    feed = make_feed(sim, sink, {NSE: "quote"})
    await feed.update_subscriptions({NFO: "ltp", NSE: "full"}, [])
    with pytest.raises(ValueError, match="unknown Kite mode 'depth'"):
        await feed.update_subscriptions({INDEX: "depth"}, [])
    assert feed.subscriptions == {NSE: "full", NFO: "ltp"}
    async with Running(feed):
        await until(lambda: bool(sink.ticks(NSE)) and bool(sink.ticks(NFO)))
    assert sim.control_log[:3] == [
        (1, {"a": "subscribe", "v": [NSE, NFO]}),
        (1, {"a": "mode", "v": ["full", [NSE]]}),
        (1, {"a": "mode", "v": ["ltp", [NFO]]}),
    ]
    assert sink.records[0].kind == StatusKind.SUBSCRIPTIONS_CHANGED  # type: ignore[union-attr]


async def test_the_reconnect_log_line_rounds_its_wait_to_milliseconds(
    sim: KiteTickerSimulator,
) -> None:
    from structlog.testing import capture_logs

    sink = ListSink()
    feed = make_feed(sim, sink, {NSE: "full"})
    with capture_logs() as logs:
        async with Running(feed):
            await until(lambda: len(sink.ticks()) > 5)
            await sim.drop_connections()
            await until(lambda: sim.connections_opened == 2)
    waits = [e["in_s"] for e in logs if e["event"] == "kite ticker reconnecting"]
    assert waits and all(w == round(w, 3) for w in waits)

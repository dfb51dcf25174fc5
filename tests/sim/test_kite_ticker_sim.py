"""The loopback Kite ticker speaks the real protocol: checked with a bare websocket client and
both parsers (ours and kiteconnect's)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import websockets
from kiteconnect import KiteTicker
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from shriven.events import KiteTick, SeqCounter
from shriven.feeds.base import FeedStats
from shriven.feeds.kite.protocol import parse_message
from shriven.sim.kite_ticker import KiteTickerSimulator

NSE, NFO, INDEX = (101 << 8) | 1, (202 << 8) | 2, (256 << 8) | 9
CLOCK = 1_700_000_000.0


@pytest.fixture
async def sim() -> AsyncIterator[KiteTickerSimulator]:
    s = KiteTickerSimulator(
        seed=5, ticks_per_second=2_000, heartbeat_interval=0.1, clock=lambda: CLOCK
    )
    s.url = await s.start()  # type: ignore[attr-defined]
    yield s
    await s.stop()


def url(sim: KiteTickerSimulator, token: str = "sim_access_token", key: str = "sim_api_key") -> str:
    return f"{sim.url}?api_key={key}&access_token={token}"  # type: ignore[attr-defined]


def connect(address: str) -> websockets.asyncio.client.connect:
    # An unbounded receive queue: a bounded one stops reading when full, and the server's
    # close reply then waits behind unread ticks until the client's close timeout.
    return websockets.connect(address, max_queue=None, open_timeout=10)


async def receive_binary(ws: ClientConnection, count: int, deadline: float = 20.0) -> list[bytes]:
    out: list[bytes] = []
    async with asyncio.timeout(deadline):
        while len(out) < count:
            msg = await ws.recv()
            if isinstance(msg, bytes):
                out.append(msg)
    return out


async def ticks_until(
    ws: ClientConnection, want: int, stats: FeedStats | None = None
) -> list[KiteTick]:
    seq, ticks = SeqCounter(), []
    async with asyncio.timeout(20):
        while len(ticks) < want:
            msg = await ws.recv()
            if isinstance(msg, bytes):
                ticks += parse_message(msg, 0, seq, stats)
    return ticks


@pytest.mark.parametrize(
    ("key", "token"), [("sim_api_key", "wrong"), ("other_key", "sim_access_token")]
)
async def test_bad_credentials_are_refused_with_http_403(
    sim: KiteTickerSimulator, key: str, token: str
) -> None:
    with pytest.raises(InvalidStatus) as info:
        await websockets.connect(url(sim, token, key), open_timeout=10)
    assert info.value.response.status_code == 403
    assert sim.rejected == 1


async def test_idle_connection_gets_one_byte_heartbeats(sim: KiteTickerSimulator) -> None:
    async with connect(url(sim)) as ws:
        assert await receive_binary(ws, 2) == [b"\x00", b"\x00"]


async def modes_applied(sim: KiteTickerSimulator, want: dict[int, str]) -> dict[int, int]:
    """Wait until the simulator has applied ``want``; returns how many packets each token had
    been sent by then (later packets use the new modes)."""
    async with asyncio.timeout(20):
        while list(sim.subscriptions().values()) != [want]:
            await asyncio.sleep(0.01)
    return {token: len(sim.ledger_for(token)) for token in want}


async def test_modes_select_the_packet_layouts_and_kiteconnect_agrees(
    sim: KiteTickerSimulator,
) -> None:
    oracle = KiteTicker("k", "t")
    want = {NSE: "full", NFO: "ltp", INDEX: "full"}
    per_token: dict[int, list[tuple[KiteTick, dict]]] = {t: [] for t in want}
    async with connect(url(sim)) as ws:
        await ws.send(json.dumps({"a": "subscribe", "v": list(want)}))
        await ws.send(json.dumps({"a": "mode", "v": ["full", [NSE, INDEX]]}))
        await ws.send(json.dumps({"a": "mode", "v": ["ltp", [NFO]]}))
        before = await modes_applied(sim, want)
        async with asyncio.timeout(20):
            while any(len(per_token[t]) <= before[t] + 3 for t in want):
                message = await ws.recv()
                if isinstance(message, str):
                    continue
                ours = parse_message(message, 0, SeqCounter(), FeedStats("kite"))
                theirs = oracle._parse_binary(message)
                assert len(ours) == len(theirs)
                for tick, d in zip(ours, theirs, strict=True):
                    per_token[tick.instrument_token].append((tick, d))
    seen = set()
    for token, pairs in per_token.items():
        for tick, d in pairs[before[token] :]:
            assert (tick.instrument_token, tick.last_price / 100) == (
                d["instrument_token"],
                d["last_price"],
            )
            seen.add((token, tick.mode, d["mode"], "depth" in d, "volume_traded" in d))
    # index tokens use the index layout (no volume), full equities carry depth, NFO is ltp only
    assert seen == {
        (NSE, "full", "full", True, True),
        (INDEX, "full", "full", False, False),
        (NFO, "ltp", "ltp", False, False),
    }


async def test_ticks_are_realistic(sim: KiteTickerSimulator) -> None:
    async with connect(url(sim)) as ws:
        await ws.send(json.dumps({"a": "subscribe", "v": [NSE, NFO]}))
        await ws.send(json.dumps({"a": "mode", "v": ["full", [NSE, NFO]]}))
        await asyncio.sleep(0.2)
        ticks = [t for t in await ticks_until(ws, 300) if t.mode == "full"]
    assert ticks
    for t in ticks:
        (best_bid, _, _), (best_ask, _, _) = t.bids[0], t.asks[0]
        assert [p for p, _, _ in t.bids] == sorted((p for p, _, _ in t.bids), reverse=True)
        assert [p for p, _, _ in t.asks] == sorted(p for p, _, _ in t.asks)
        assert best_bid < best_ask and best_bid <= t.last_price <= best_ask
        assert t.low <= t.last_price <= t.high
        assert (t.oi > 0) == (t.instrument_token == NFO)
        assert t.exchange_timestamp == t.last_trade_time == int(CLOCK)
    volumes = [t.volume_traded for t in ticks if t.instrument_token == NSE]
    assert volumes == sorted(volumes) and len(set(volumes)) == len(volumes)


async def test_every_token_walks_the_same_path_for_the_same_seed() -> None:
    paths = []
    for rate in (500, 5_000):  # different rates, so different interleavings
        s = KiteTickerSimulator(seed=9, ticks_per_second=rate, clock=lambda: CLOCK)
        s.url = await s.start()  # type: ignore[attr-defined]
        try:
            async with connect(url(s)) as ws:
                await ws.send(json.dumps({"a": "subscribe", "v": [NSE, NFO]}))
                await ticks_until(ws, 200)
        finally:
            await s.stop()
        paths.append([(t.last_price, t.volume_traded) for t in s.ledger_for(NSE)[:50]])
    assert len(paths[0]) == 50 and paths[0] == paths[1]


async def test_high_rates_batch_many_packets_per_message() -> None:
    s = KiteTickerSimulator(seed=1, ticks_per_second=50_000, clock=lambda: CLOCK)
    s.url = await s.start()  # type: ignore[attr-defined]
    try:
        async with connect(url(s)) as ws:
            await ws.send(
                json.dumps({"a": "subscribe", "v": list(range(1 << 8 | 1, 400 << 8, 256))})
            )
            messages = await receive_binary(ws, 20)
    finally:
        await s.stop()
    assert max(int.from_bytes(m[:2], "big") for m in messages) > 50


async def test_unsubscribe_stops_a_token(sim: KiteTickerSimulator) -> None:
    async with connect(url(sim)) as ws:
        await ws.send(json.dumps({"a": "subscribe", "v": [NSE, NFO]}))
        await ticks_until(ws, 50)
        await ws.send(json.dumps({"a": "unsubscribe", "v": [NSE]}))
        async with asyncio.timeout(20):
            while any(NSE in modes for modes in sim.subscriptions().values()):
                await asyncio.sleep(0.01)
        sent_before = len(sim.ledger_for(NSE))
        later = await ticks_until(ws, 100)
    assert len(sim.ledger_for(NSE)) == sent_before
    assert {t.instrument_token for t in later[-50:]} == {NFO}


@pytest.mark.parametrize("kind", ["bad_length", "count_overrun", "trailing_bytes"])
async def test_malformed_messages_keep_their_good_packets(
    sim: KiteTickerSimulator, kind: str
) -> None:
    stats = FeedStats("kite")
    async with connect(url(sim)) as ws:
        await ws.send(json.dumps({"a": "subscribe", "v": [NSE]}))
        await ticks_until(ws, 1)
        sim.send_malformed(kind)  # type: ignore[arg-type]
        async with asyncio.timeout(20):
            while not stats.parse_errors:
                parse_message(await ws.recv(), 0, SeqCounter(), stats)  # type: ignore[arg-type]
    expected = {"bad_length": "kite_packet_length", "count_overrun": "kite_truncated"}
    assert stats.errors_by_kind == {expected.get(kind, "kite_trailing_bytes"): 1}


async def test_text_messages_are_sent_as_text(sim: KiteTickerSimulator) -> None:
    async with connect(url(sim)) as ws:
        await receive_binary(ws, 1)
        sim.send_text({"type": "order", "data": {"order_id": "42"}})
        async with asyncio.timeout(20):
            while isinstance(msg := await ws.recv(), bytes):
                pass
    assert json.loads(msg) == {"type": "order", "data": {"order_id": "42"}}


async def test_stall_silences_everything_until_resumed(sim: KiteTickerSimulator) -> None:
    async with connect(url(sim)) as ws:
        await ws.send(json.dumps({"a": "subscribe", "v": [NSE]}))
        await receive_binary(ws, 1)
        sim.stall()
        for _ in range(1000):  # drain what was in flight; then 0.5 s of silence
            try:
                async with asyncio.timeout(0.5):
                    await ws.recv()
            except TimeoutError:
                break
        sent = (sim.packets_sent, sim.heartbeats_sent)
        await asyncio.sleep(0.3)
        assert (sim.packets_sent, sim.heartbeats_sent) == sent
        sim.resume()
        await receive_binary(ws, 1)

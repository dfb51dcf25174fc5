from __future__ import annotations

import asyncio
import json

import aiohttp

from shriven.book import OrderBook
from shriven.sim.binance import BinanceSimulator


def test_same_seed_same_messages_and_different_seed_differs() -> None:
    a, b, c = (BinanceSimulator(seed=s) for s in (3, 3, 4))
    msgs_a = [a.step() for _ in range(50)]
    assert msgs_a == [b.step() for _ in range(50)]
    assert msgs_a != [c.step() for _ in range(50)]


def test_true_book_is_the_start_plus_every_diff_and_never_crossed() -> None:
    sim = BinanceSimulator(["BTCUSDT"], seed=5)
    book = OrderBook()
    sb = sim.books["BTCUSDT"]
    start_bids, start_asks = sim.true_book("BTCUSDT", sb.start_id)
    book.replace(start_bids, start_asks)
    for _ in range(300):
        for _stream, kind, text in sim.step():
            if kind == "depth":
                d = json.loads(text)
                book.apply_strings(d["b"], d["a"])
                assert book.levels() == sim.true_book("BTCUSDT", d["u"])
                assert not book.is_crossed() and not book.is_locked()


async def test_rest_snapshot_is_the_true_book_at_its_id_and_faults_answer_429() -> None:
    sim = BinanceSimulator(["ETHUSDT"], seed=2, interval_ms=10)
    base = await sim.start()
    try:
        async with aiohttp.ClientSession() as http:
            await asyncio.sleep(0.1)
            async with http.get(f"{base}/api/v3/depth?symbol=ETHUSDT&limit=1000") as r:
                snap = await r.json()
            bids = [(float(p), float(q)) for p, q in snap["bids"]]
            asks = [(float(p), float(q)) for p, q in snap["asks"]]
            assert (bids, asks) == sim.true_book("ETHUSDT", snap["lastUpdateId"])
            async with http.get(f"{base}/api/v3/depth?symbol=ETHUSDT&limit=5") as r:
                assert len((await r.json())["bids"]) == 5
            sim.fail_rest(1, 429, retry_after=2)
            async with http.get(f"{base}/api/v3/depth?symbol=ETHUSDT") as r:
                assert r.status == 429 and r.headers["Retry-After"] == "2"
                assert (await r.json())["code"] == -1003
            async with http.get(f"{base}/api/v3/depth?symbol=NOPE") as r:
                assert r.status == 400
    finally:
        await sim.stop()


async def test_stream_sends_only_subscribed_streams_wrapped_and_faults_on_demand() -> None:
    sim = BinanceSimulator(["BTCUSDT", "ETHUSDT"], seed=9, interval_ms=10)
    await sim.start()
    try:
        async with aiohttp.ClientSession() as http:
            url = f"{sim.ws_url}/stream?streams=ethusdt@depth@100ms"
            async with http.ws_connect(url) as ws:
                for _ in range(5):
                    msg = json.loads(await asyncio.wait_for(ws.receive_str(), 5))
                    assert msg["stream"] == "ethusdt@depth@100ms"
                    assert msg["data"]["e"] == "depthUpdate" and msg["data"]["s"] == "ETHUSDT"
                sim.send_malformed()
                # messages sent before it may still be queued ahead of it: read up to 200
                for _ in range(200):
                    if (await asyncio.wait_for(ws.receive_str(), 5)).endswith('"e":"tra'):
                        break
                else:
                    raise AssertionError("no malformed message in the 200 after asking for one")
                await sim.drop_connections()
                for _ in range(200):  # the close comes after what was already queued
                    closing = await asyncio.wait_for(ws.receive(), 5)
                    if closing.type != aiohttp.WSMsgType.TEXT:
                        break
                assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert {e.kind for e in sim.ledger} >= {"depth", "malformed"}
        assert all(e.conn == 1 for e in sim.ledger)
    finally:
        await sim.stop()


async def test_withheld_diff_makes_a_hole_in_the_sent_sequence() -> None:
    sim = BinanceSimulator(["BTCUSDT"], seed=1, interval_ms=10, trade_probability=0)
    await sim.start()
    try:
        url = f"{sim.ws_url}/stream?streams=btcusdt@depth@100ms"
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            ids = []
            for i in range(12):
                if i == 4:
                    sim.inject_gap("BTCUSDT")
                d = json.loads(await asyncio.wait_for(ws.receive_str(), 5))["data"]
                ids.append((d["U"], d["u"]))
        holes = [i for i in range(1, len(ids)) if ids[i][0] != ids[i - 1][1] + 1]
        assert len(holes) == 1
        assert sum(e.kind == "withheld" for e in sim.ledger) == 1
    finally:
        await sim.stop()

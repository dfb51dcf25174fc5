"""The query API answers as `shriven replay` does, in every format, with bounded streaming;
and bad requests get one clear line: auth failures, malformed subscribes, unknown symbols,
ranges the store does not hold, too many clients."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import aiohttp
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import websockets

from replay.synth import NIFTY_FUT, T0
from shriven.errors import ConfigError
from shriven.replay import replay_range
from shriven.serve import ServeOptions, Server

from .helpers import ZONE, serving

NS = 1_000_000_000
START, END = "2026-11-20T09:15:30", "2026-11-20T09:16:10"


async def get(url: str, **params: Any) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as s, s.get(url, params=params) as r:
        return r.status, await r.read(), r.headers.get("Content-Type", "")


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "arrow"])
async def test_records_equal_what_replay_writes_in_each_format(synth_store: Path, fmt: str) -> None:
    expected = io.BytesIO()
    replay_range(
        synth_store, expected, ZONE, start_ns=T0 + 30 * NS, end_ns=T0 + 70 * NS,
        symbols=["BTCUSDT"], kinds=["trades", "depth"], fmt=fmt,
    )  # fmt: skip
    async with serving(synth_store) as server:
        status, body, ctype = await get(
            server.url + "/v1/records", symbol="BTCUSDT", start=START, end=END,
            type="trades,depth", format=fmt,
        )  # fmt: skip
    assert status == 200
    if fmt in ("jsonl", "csv"):
        assert body == expected.getvalue() and len(body.splitlines()) > 100
        assert ctype.startswith({"jsonl": "application/x-ndjson", "csv": "text/csv"}[fmt])
    elif fmt == "parquet":
        got = pq.read_table(io.BytesIO(body))
        assert got.equals(pq.read_table(io.BytesIO(expected.getvalue()))) and got.num_rows > 100
    else:
        got = pa.ipc.open_stream(body).read_all()
        assert got.equals(pa.ipc.open_stream(expected.getvalue()).read_all())
        assert got.num_rows > 100


async def test_a_long_export_streams_in_chunks_and_a_client_that_leaves_stops_it(
    synth_store: Path,
) -> None:
    async with serving(synth_store) as server:
        async with aiohttp.ClientSession() as s:
            async with s.get(server.url + "/v1/records", params={"format": "jsonl"}) as r:
                assert r.status == 200 and r.headers.get("Transfer-Encoding") == "chunked"
                first = await r.content.read(1000)
                assert first.startswith(b"{")
            # the client left after 1000 bytes; the server is still fine
            async with s.get(server.url + "/v1/stats") as r:
                stats = await r.json()
        assert stats["store"]["ticks"]["records"] > 1000
        assert stats["server"]["live"] is False


async def test_book_is_the_replay_book_with_its_features(synth_store: Path) -> None:
    async with serving(synth_store) as server:
        status, body, _ = await get(server.url + "/v1/book", symbol="BTCUSDT", at=END, depth=3)
        missing, line, _ = await get(server.url + "/v1/book", symbol="DOGEUSDT", at=END)
        bad_time, why, _ = await get(server.url + "/v1/book", symbol="BTCUSDT", at="tomorrow")
    doc = json.loads(body)
    assert status == 200 and doc["key"] == "binance:BTCUSDT" and doc["valid"]
    assert len(doc["bids"]) == 3 and doc["bids"][0][0] > doc["bids"][1][0]
    assert doc["features"]["spread"] == pytest.approx(doc["asks"][0][0] - doc["bids"][0][0])
    assert missing == 404 and "DOGEUSDT" in json.loads(line)["error"]
    assert bad_time == 400 and "cannot read the time" in json.loads(why)["error"]
    assert line.count(b"\n") == 1  # one line


async def test_unknown_symbols_and_formats_are_one_line_errors(synth_store: Path) -> None:
    async with serving(synth_store) as server:
        unknown = await get(server.url + "/v1/records", symbol="NOSUCH1", start=START, end=END)
        fmt = await get(server.url + "/v1/records", format="xlsx")
        kind = await get(server.url + "/v1/records", type="candles")
        nowhere = await get(server.url + "/v2/everything")
        depth = await get(
            server.url + f"/binance/history/{START}/{END}/1x/api/v3/depth", symbol="NOSUCHUSDT"
        )
    assert unknown[0] == 404 and "NOSUCH1" in json.loads(unknown[1])["error"]
    assert fmt[0] == 400 and "jsonl" in json.loads(fmt[1])["error"]
    assert kind[0] == 400 and "candles" in json.loads(kind[1])["error"]
    assert nowhere[0] == 404 and "/v1/records" in json.loads(nowhere[1])["error"]
    assert depth[0] == 400 and json.loads(depth[1])["code"] == -1121


async def test_instruments_lists_the_books_the_store_holds(synth_store: Path) -> None:
    async with serving(synth_store) as server:
        status, body, _ = await get(server.url + "/v1/instruments")
    doc = json.loads(body)
    assert status == 200 and "binance:BTCUSDT" in doc["books"]
    assert f"kite:{NIFTY_FUT}" in doc["books"]


async def test_with_a_key_every_request_must_carry_it(synth_store: Path) -> None:
    async with serving(synth_store, key="s3cret") as server:
        url = server.url
        none = await get(url + "/v1/stats")
        wrong = await get(url + "/v1/stats", key="guess")
        by_query = await get(url + "/v1/stats", key="s3cret")
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/v1/stats", headers={"X-MBX-APIKEY": "s3cret"}) as r:
                by_header = r.status
            async with s.get(url + "/key/s3cret/v1/stats") as r:
                by_path = r.status
            async with s.get(url + "/metrics", headers={"Authorization": "Bearer s3cret"}) as r:
                metrics = await r.text()
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(url.replace("http", "ws") + "/kite?access_token=nope")
        assert server.stats.rejected["auth"] == 3
    assert none[0] == 401 and "API key" in json.loads(none[1])["error"]
    assert wrong[0] == 403 and json.loads(wrong[1]) == {"error": "wrong API key"}
    assert by_query[0] == by_header == by_path == 200
    assert refused.value.response.status_code == 403
    assert 'shriven_serve_rejected_total{reason="auth"} 2.0' in metrics  # before the websocket
    assert "s3cret" not in metrics


def test_binding_beyond_loopback_needs_a_key(synth_store: Path) -> None:
    with pytest.raises(ConfigError, match="SHRIVEN_SERVE__API_KEY"):
        Server(ServeOptions(host="0.0.0.0"), synth_store, ZONE, live=False)
    Server(ServeOptions(host="::1"), synth_store, ZONE, live=False)  # loopback: fine


async def test_malformed_subscribes_are_answered_as_the_venues_do(synth_store: Path) -> None:
    async with serving(synth_store) as server:
        ws_url = server.url.replace("http", "ws")
        path = f"/binance/history/{START}/{END}/1x/stream"
        async with websockets.connect(ws_url + path) as ws:
            answers = []
            for text in [
                "{not json",
                '{"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": 1}',
                '{"method": "FETCH", "id": 2}',
                '{"method": "SUBSCRIBE", "params": "btcusdt@trade", "id": 3}',
                '{"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 4}',
                '{"method": "LIST_SUBSCRIPTIONS", "id": 5}',
            ]:
                await ws.send(text)
                answers.append(json.loads(await ws.recv()))
        async with websockets.connect(ws_url + f"/kite/history/{START}/{END}/1x") as ws:
            await ws.send("[1, 2")
            await ws.send('{"a": "subscribe", "v": ["NIFTY"]}')
            await ws.send('{"a": "mode", "v": ["fast", [1]]}')
            kite = [json.loads(await ws.recv()) for _ in range(3)]
        refused = await get(ws_url.replace("ws", "http") + "/binance/stream?streams=btcusdt@kline")
    assert answers[0] == {"error": {"code": 3, "msg": "Invalid JSON"}, "id": None}
    assert answers[1]["error"]["code"] == 2 and "kline_1m" in answers[1]["error"]["msg"]
    assert answers[1]["id"] == 1
    assert answers[2]["error"]["code"] == 2 and answers[2]["id"] == 2
    assert answers[3]["error"]["code"] == 2
    assert answers[4] == {"result": None, "id": 4}
    assert answers[5] == {"result": ["btcusdt@trade"], "id": 5}
    assert all(k["type"] == "error" for k in kite) and "mode" in kite[2]["data"]
    assert refused[0] == 400  # not a websocket request at all


async def test_a_range_outside_the_store_and_a_bad_speed_close_with_the_reason(
    synth_store: Path,
) -> None:
    async with serving(synth_store) as server:
        ws_url = server.url.replace("http", "ws")
        reasons = []
        for path in [
            "/binance/history/2020-01-01T00:00Z/2020-01-02T00:00Z/max/stream?streams=btcusdt@trade",
            f"/binance/history/{START}/{END}/fast/stream?streams=btcusdt@trade",
            f"/kite/history/{END}/{START}/1x",
            "/binance/stream?streams=btcusdt@trade",  # live, on a server of a store
        ]:
            async with websockets.connect(ws_url + path) as ws:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 10)
                reasons.append((closed.value.rcvd.code, closed.value.rcvd.reason))
    assert [code for code, _ in reasons] == [1008] * 4
    assert "outside the store" in reasons[0][1]
    assert "bad speed 'fast'" in reasons[1][1]
    assert "empty" in reasons[2][1]
    assert "no live data" in reasons[3][1]


async def test_clients_beyond_the_limit_are_refused(synth_store: Path) -> None:
    async with serving(synth_store, max_clients=2) as server:
        url = server.url.replace("http", "ws") + f"/kite/history/{START}/{END}/1x"
        async with websockets.connect(url), websockets.connect(url):
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(url)
        assert server.stats.rejected["too_many_clients"] == 1
    assert refused.value.response.status_code == 503

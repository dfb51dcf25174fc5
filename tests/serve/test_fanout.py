"""Live fan-out under load: 100 concurrent stream clients all get every diff in order, a client
that stops reading is cut with a close reason and counted, and neither the others nor the
recorder notice it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import socket
from pathlib import Path

import websockets

from .live import live_binance, wait_for

CLIENTS = 100


async def stuck_client(url: str, path: str) -> asyncio.StreamWriter:
    """A websocket client that completes the handshake and then never reads again."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return writer


async def read_all(ws: websockets.ClientConnection, into: list[dict]) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for text in ws:
            into.append(json.loads(text))


def assert_contiguous_diffs(messages: list[dict]) -> None:
    diffs = [m["data"] for m in messages if m["data"]["e"] == "depthUpdate"]
    assert diffs
    assert all(b["U"] == a["u"] + 1 for a, b in itertools.pairwise(diffs))


async def test_100_concurrent_clients_each_get_every_diff_in_order(tmp_path: Path) -> None:
    async with live_binance(tmp_path) as live:
        url = live.ws + "/binance/stream?streams=btcusdt@depth@100ms/ethusdt@trade"
        clients = [await websockets.connect(url) for _ in range(CLIENTS)]
        got: list[list[dict]] = [[] for _ in clients]
        readers = [asyncio.create_task(read_all(c, g)) for c, g in zip(clients, got, strict=True)]
        assert live.server.stats.clients["binance"] == CLIENTS
        await wait_for(lambda: min(len(g) for g in got) >= 40, 60, "40 messages each")
        for c in clients:
            await c.close()
        await asyncio.gather(*readers)
        assert sum(live.server.stats.disconnects.values()) == CLIENTS
        assert live.server.stats.disconnects[("binance", "closed")] == CLIENTS
    depth_ids = [[m["data"]["u"] for m in g if m["stream"] == "btcusdt@depth@100ms"] for g in got]
    for messages in got:
        assert_contiguous_diffs(messages)
        assert {m["stream"] for m in messages} == {"btcusdt@depth@100ms", "ethusdt@trade"}
    common = set.intersection(*(set(ids) for ids in depth_ids))
    assert len(common) >= 20  # the same diffs, over the stretch they all were connected


async def test_a_client_that_stops_reading_is_cut_and_nobody_else_notices(tmp_path: Path) -> None:
    serve = {"client_buffer_bytes": 64 * 1024, "socket_send_buffer": 8192}
    async with live_binance(tmp_path, **serve) as live:
        live.sims.binance.interval = 0.01  # type: ignore[union-attr]  # 100 diffs/s per symbol
        path = "/binance/stream?streams=btcusdt@depth@100ms/ethusdt@depth@100ms/btcusdt@trade"
        clients = [await websockets.connect(live.ws + path) for _ in range(5)]
        got: list[list[dict]] = [[] for _ in clients]
        readers = [asyncio.create_task(read_all(c, g)) for c, g in zip(clients, got, strict=True)]
        stuck = await stuck_client(live.server.url, path)
        stats = live.server.stats
        await wait_for(lambda: stats.disconnects[("binance", "slow")] == 1, 60, "the cut")
        cut_at = live.pipeline.stats.records_written
        seen = [len(g) for g in got]
        await wait_for(lambda: live.pipeline.stats.records_written > cut_at + 200, 30, "records")
        await wait_for(lambda: all(len(g) > n + 100 for g, n in zip(got, seen, strict=True)), 30)
        assert live.pipeline.queue.stats.dropped == 0
        await wait_for(lambda: stats.clients["binance"] == 5, 10, "the cut client's handler")
        assert stats.dropped_bytes > 64 * 1024  # what the stuck client had unsent went with it
        body = (await _metrics(live.server.url)).splitlines()
        assert 'shriven_serve_disconnects_total{protocol="binance",reason="slow"} 1.0' in body
        for c in clients:
            await c.close()
        await asyncio.gather(*readers)
        stuck.close()
    for messages in got:  # never cut, nothing missing
        assert_contiguous_diffs([m for m in messages if m["stream"].startswith("btcusdt@depth")])
        assert_contiguous_diffs([m for m in messages if m["stream"].startswith("ethusdt@depth")])
    assert stats.disconnects[("binance", "closed")] == 5


async def _metrics(url: str) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
        return await r.text()

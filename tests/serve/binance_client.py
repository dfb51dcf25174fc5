"""A Binance client that keeps a local book by Binance's documented procedure (spot's, or the
futures venues' ``pu`` chain), with its base URLs pointed at shriven (a websockets stream client
and aiohttp REST, as a strategy would write one). It records the book after every update id it
applied."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import aiohttp
import websockets

Book = tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]


@dataclass
class LocalBook:
    symbol: str
    bids: dict[float, float] = field(default_factory=dict)
    asks: dict[float, float] = field(default_factory=dict)
    update_id: int = 0
    at: dict[int, Book] = field(default_factory=dict)  # u -> the book right after it
    snapshots: int = 0
    resyncs: int = 0
    close_code: int | None = None
    close_reason: str = ""

    def levels(self) -> Book:
        return (
            tuple(sorted(self.bids.items(), reverse=True)),
            tuple(sorted(self.asks.items())),
        )

    def apply(self, side: dict[float, float], levels: list[list[str]]) -> None:
        for p, q in levels:
            if float(q) == 0:
                side.pop(float(p), None)
            else:
                side[float(p)] = float(q)


async def _snapshot(
    session: aiohttp.ClientSession, rest: str, symbol: str, path: str
) -> dict | None:
    async with session.get(f"{rest}{path}", params={"symbol": symbol, "limit": 1000}) as r:
        if r.status != 200:
            return None  # e.g. 503 while the recorded book resyncs: try again
        return await r.json()


async def keep_book(
    stream: str,
    rest: str,
    symbol: str,
    *,
    updates: int,
    timeout: float = 30.0,
    depth_path: str = "/api/v3/depth",
) -> LocalBook:
    """Follow ``symbol``'s diff stream until ``updates`` diffs were applied, or the server ends
    the stream (history), or ``timeout``. A ``depth_path`` other than spot's follows the futures
    procedure: keep events with ``u >= lastUpdateId``, the first applied has
    ``U <= lastUpdateId <= u``, each next one's ``pu`` is the previous ``u``."""
    futures = depth_path != "/api/v3/depth"
    book = LocalBook(symbol)
    name = f"{symbol.lower()}@depth@100ms"
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        ws = await websockets.connect(f"{stream}/stream?streams={name}", max_size=None)
        try:
            buffered: list[dict] = []
            synced = fresh = False
            applied = 0
            while applied < updates and time.monotonic() < deadline:
                try:
                    text = await asyncio.wait_for(ws.recv(), 1.0)
                except TimeoutError:
                    continue
                except websockets.ConnectionClosed as exc:
                    book.close_code = exc.rcvd.code if exc.rcvd else None
                    book.close_reason = exc.rcvd.reason if exc.rcvd else ""
                    break
                event = json.loads(text)["data"]
                if synced:
                    pending = [event]
                else:
                    # 1. buffer; 2. snapshot, again while older than the buffer; 3. drop u <= it
                    buffered.append(event)
                    snap = await _snapshot(session, rest, symbol, depth_path)
                    if (
                        snap is None
                        or snap["lastUpdateId"] + (0 if futures else 1) < (buffered[0]["U"])
                    ):
                        continue
                    if futures:
                        assert {"E", "T"} <= snap.keys()
                    book.snapshots += 1
                    book.bids = {float(p): float(q) for p, q in snap["bids"]}
                    book.asks = {float(p): float(q) for p, q in snap["asks"]}
                    book.update_id = snap["lastUpdateId"]
                    pending, buffered = buffered, []
                    synced = fresh = True
                for e in pending:
                    if e["u"] < book.update_id or (e["u"] == book.update_id and not futures):
                        continue
                    # 4. the first applied straddles the snapshot; 5. each next one continues it
                    if futures:
                        ok = (
                            e["U"] <= book.update_id <= e["u"]
                            if fresh
                            else e["pu"] == book.update_id
                        )
                    elif fresh:
                        ok = e["U"] <= book.update_id + 1 <= e["u"]
                    else:
                        ok = e["U"] == book.update_id + 1
                    if not ok:  # a gap: start again from a snapshot
                        synced = False
                        book.resyncs += 1
                        buffered = [e]
                        break
                    fresh = False
                    book.apply(book.bids, e["b"])
                    book.apply(book.asks, e["a"])
                    book.update_id = e["u"]
                    book.at[e["u"]] = book.levels()
                    applied += 1
        finally:
            await ws.close()
    return book

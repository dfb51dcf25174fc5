"""A Binance client following the venue's local-book procedure against shriven, live (from the
recorder's tap, through a sequence gap the simulator injects) and on history: its book equals
shriven's own book (replay's, rebuilt from the store) at every update id it reached. The same
for USD-M futures with their ``pu`` chain, from the simulator's futures mode."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from shriven.events import BinanceDepth, BinanceFuturesDepth, BinanceFuturesDepthSnapshot
from shriven.replay import StoreReader, book_states

from .binance_client import Book, LocalBook, keep_book
from .helpers import serving
from .live import live_binance, wait_for


def shriven_books(data_dir: Path, symbol: str, venue: str = "binance") -> dict[int, Book]:
    """Replay's book after every recorded diff of ``symbol`` (by its last update id), and at
    each recorded resync snapshot (its lastUpdateId: a client re-applies the diff ending there,
    which replay had buffered while the book was out of sync)."""
    out: dict[int, Book] = {}
    for state in book_states(StoreReader(data_dir), f"{venue}:{symbol}", None, None, seed=None):
        t = type(state.record)
        if state.valid and t in (BinanceDepth, BinanceFuturesDepth):
            bids, asks = state.book.levels()
            out[state.record.last_update_id] = (tuple(bids), tuple(asks))  # type: ignore[union-attr]
        elif state.valid and t is BinanceFuturesDepthSnapshot:
            bids, asks = state.book.levels()
            out.setdefault(state.record.last_update_id, (tuple(bids), tuple(asks)))  # type: ignore[union-attr]
    return out


def assert_same_books(client: LocalBook, recorded: dict[int, Book], at_least: int) -> None:
    assert len(client.at) >= at_least
    compared = [u for u in client.at if u in recorded]
    assert len(compared) == len(client.at)  # every update id the client reached was recorded
    bad = [u for u in compared if client.at[u] != recorded[u]]
    assert not bad, f"{len(bad)} of {len(compared)} books differ, first at u={bad[:1]}"


def _iso(ns: int) -> str:
    """To the microsecond, rounded down (a float of the seconds can round up past a record)."""
    whole = datetime.fromtimestamp(ns // 10**9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{ns % 10**9 // 1000:06d}Z"


async def test_a_local_book_client_equals_shriven_live_and_on_history(tmp_path: Path) -> None:
    async with live_binance(tmp_path) as live:
        await wait_for(lambda: "binance:BTCUSDT" in live.server.core.live.books.books)  # type: ignore[union-attr]
        base_ws, base_http = live.ws + "/binance", live.server.url + "/binance"

        async def gap_later() -> None:
            await wait_for(lambda: live.server.stats.messages["binance"] >= 20)
            live.sims.binance.inject_gap("BTCUSDT")  # type: ignore[union-attr]

        gap = asyncio.create_task(gap_later())
        btc = await keep_book(base_ws, base_http, "BTCUSDT", updates=60)
        await gap
        eth = await keep_book(base_ws, base_http, "ETHUSDT", updates=15)
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"{base_http}/api/v3/depth", params={"symbol": "NOPEUSDT"}) as r,
        ):
            assert r.status == 400
            assert (await r.json())["code"] == -1121
    assert btc.resyncs >= 1  # the injected gap was seen and healed by a new snapshot
    recorded = shriven_books(live.data_dir, "BTCUSDT")
    assert_same_books(btc, recorded, 55)
    assert_same_books(eth, shriven_books(live.data_dir, "ETHUSDT"), 15)

    # The same procedure on the recorded hour, as fast as the client reads.
    first, last = min(btc.at), max(btc.at)
    diffs = [
        r
        for r in StoreReader(live.data_dir).ticks.records()
        if type(r) is BinanceDepth and r.symbol == "BTCUSDT"
    ]
    start = next(r.recv_ns for r in diffs if r.last_update_id >= first)
    end = max(r.recv_ns for r in diffs) + 1
    async with serving(live.data_dir) as server:
        path = f"/binance/history/{_iso(start)}/{_iso(end)}/max"
        ws, http = server.url.replace("http", "ws") + path, server.url + path
        again = await keep_book(ws, http, "BTCUSDT", updates=10_000)
    assert again.close_code == 1000 and again.close_reason.startswith("end of history")
    assert_same_books(again, recorded, 40)
    in_range = [u for u in recorded if first <= u <= last]
    assert min(again.at) <= first + 10 and max(again.at) >= last  # the range, past the gap
    assert len(set(again.at) & set(in_range)) >= 0.8 * len(in_range)
    assert again.resyncs >= 1


async def test_a_futures_local_book_client_equals_shriven_live_and_on_history(
    tmp_path: Path,
) -> None:
    venue, depth = "binance-usdm", "/fapi/v1/depth"
    async with live_binance(tmp_path, ("BTCUSDT",), venue=venue) as live:
        await wait_for(lambda: f"{venue}:BTCUSDT" in live.server.core.live.books.books)  # type: ignore[union-attr]
        base_ws, base_http = live.ws + "/" + venue, live.server.url + "/" + venue

        async def gap_later() -> None:
            await wait_for(lambda: live.server.stats.messages["binance"] >= 15)
            live.sims.futures[venue].inject_gap("BTCUSDT")

        gap = asyncio.create_task(gap_later())
        btc = await keep_book(base_ws, base_http, "BTCUSDT", updates=45, depth_path=depth)
        await gap
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"{base_http}{depth}", params={"symbol": "BTCUSDT", "limit": 7}) as r,
        ):
            assert r.status == 400 and (await r.json())["code"] == -1130  # not a futures limit
    assert btc.resyncs >= 1
    recorded = shriven_books(live.data_dir, "BTCUSDT", venue)
    assert_same_books(btc, recorded, 40)

    first, last = min(btc.at), max(btc.at)
    diffs = [
        r
        for r in StoreReader(live.data_dir).ticks.records()
        if type(r) is BinanceFuturesDepth and r.symbol == "BTCUSDT"
    ]
    start = next(r.recv_ns for r in diffs if r.last_update_id >= first)
    end = max(r.recv_ns for r in diffs) + 1000  # the path's times are to the microsecond
    async with serving(live.data_dir) as server:
        path = f"/{venue}/history/{_iso(start)}/{_iso(end)}/max"
        ws, http = server.url.replace("http", "ws") + path, server.url + path
        again = await keep_book(ws, http, "BTCUSDT", updates=10_000, depth_path=depth)
    assert again.close_code == 1000 and again.close_reason.startswith("end of history")
    assert_same_books(again, recorded, 30)
    assert min(again.at) == first and max(again.at) >= last  # from the range's first diff on
    assert again.resyncs >= 1

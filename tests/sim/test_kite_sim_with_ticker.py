"""The whole Kite loop on loopback: login, instruments, a plan, the ticker websocket mounted in
the REST simulator, a re-centring applied live, and a fresh login after the tokens expire."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from shriven.events import KiteTick, Record, Status
from shriven.feeds.kite import ticker as ticker_feed
from shriven.feeds.kite.auth import KiteAuth, KiteCredentials
from shriven.feeds.kite.instruments import load_instruments
from shriven.sim import kite_ticker as ticker_sim
from shriven.sim.kite_rest import KiteSimulator
from shriven.universe import InstrumentTable, build_plan, update_plan


class ListSink:
    def __init__(self) -> None:
        self.records: list[Record] = []

    async def put(self, record: Record) -> None:
        self.records.append(record)


async def wait_for(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_plan_streams_recentres_and_survives_token_expiry(tmp_path: Path) -> None:
    ticker = ticker_sim.KiteTickerSimulator(seed=1, ticks_per_second=500)
    sim = KiteSimulator(seed=1, ticker=ticker)
    url = await sim.start()
    task: asyncio.Task[None] | None = None
    try:
        a = sim.account
        creds = KiteCredentials(
            user_id=a.user_id,
            api_key=a.api_key,
            api_secret=a.api_secret,
            password=a.password,
            totp_secret=a.totp_secret,
        )
        auth = KiteAuth(creds, login_root=url, api_root=url, cache_dir=tmp_path)
        rows, _ = await asyncio.to_thread(load_instruments, tmp_path, url)
        table = InstrumentTable(rows)
        plan = build_plan(table, "NIFTY 50", 25_000, strike_range=2)
        sink = ListSink()
        feed = ticker_feed.KiteTickerFeed(
            url.replace("http", "ws", 1) + "/ws",
            a.api_key,
            auth.access_token,
            sink,
            subscriptions=plan.modes,
        )
        task = asyncio.create_task(feed.run())

        def seen() -> set[int]:
            return {r.instrument_token for r in sink.records if type(r) is KiteTick}

        await wait_for(lambda: set(plan.tokens) <= seen())
        moved, diff = update_plan(plan, table, 25_100)
        assert diff.reason == "recentre"
        await feed.update_subscriptions(diff.subscribe, diff.unsubscribe)
        await wait_for(lambda: set(diff.subscribe) <= seen())

        def connects() -> int:
            return sum(1 for r in sink.records if type(r) is Status and r.kind == "connected")

        sim.expire_tokens()
        await ticker.drop_connections()
        await wait_for(lambda: connects() >= 2)
        assert auth.logins == 2
        assert set(moved.tokens) <= seen()
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await sim.stop()

"""Futures REST against the simulator: exchangeInfo checks and roll aliases, the weight header
read and obeyed before a 429, and 418/429 Retry-After obeyed, logged once and counted."""

from __future__ import annotations

import asyncio
import time

import pytest
from structlog.testing import capture_logs

from shriven.errors import ConfigError
from shriven.feeds.binance.listings import resolve_symbols
from shriven.feeds.binance.rest import SnapshotClient
from shriven.feeds.binance.streams import parse_exchange_info
from shriven.feeds.binance.venues import market
from shriven.sim.binance import BinanceSimulator

COINM = ["BTCUSD_PERP", "BTCUSD_670326", "BTCUSD_670625", "ETHUSD_PERP"]


async def exchange_info(sim: BinanceSimulator, venue: str):  # type: ignore[no-untyped-def]
    client = SnapshotClient(sim.base_url, venue=venue)
    try:
        body, _ = await client.get(market(venue).exchange_info_path, {}, what="exchangeInfo")
    finally:
        await client.close()
    return parse_exchange_info(body)


async def test_exchange_info_names_contract_types_tick_and_lot_sizes() -> None:
    sim = BinanceSimulator(COINM, venue="binance-coinm")
    await sim.start()
    try:
        info = await exchange_info(sim, "binance-coinm")
    finally:
        await sim.stop()
    assert info.weight_per_minute == 2400
    kinds = {s: row.contract_type for s, row in info.listings.items()}
    assert kinds == {
        "BTCUSD_PERP": "PERPETUAL",
        "BTCUSD_670326": "CURRENT_QUARTER",
        "BTCUSD_670625": "NEXT_QUARTER",
        "ETHUSD_PERP": "PERPETUAL",
    }
    row = info.listings["BTCUSD_670326"]
    assert (row.pair, row.tick_size, row.lot_size) == ("BTCUSD", "0.01000000", "0.00001000")
    assert row.delivery_date > 0 and row.contract_size == 100 and row.status == "TRADING"


async def test_unknown_symbol_is_one_line_naming_the_venue_and_the_closest() -> None:
    sim = BinanceSimulator(["BTCUSDT", "ETHUSDT", "BTCDOMUSDT"], venue="binance-usdm")
    await sim.start()
    try:
        info = await exchange_info(sim, "binance-usdm")
    finally:
        await sim.stop()
    with pytest.raises(ConfigError) as err:
        resolve_symbols("binance-usdm", ["ETHUSDT", "BTCUSTD"], info)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith("binance-usdm does not list BTCUSTD (closest listed: BTCUSDT")


def test_aliases_name_the_trading_contract_and_skip_a_delivered_one() -> None:
    async def go(delivered: set[str]):  # type: ignore[no-untyped-def]
        sim = BinanceSimulator(COINM, venue="binance-coinm")
        sim.delivered |= delivered
        await sim.start()
        try:
            return await exchange_info(sim, "binance-coinm")
        finally:
            await sim.stop()

    info = asyncio.run(go(set()))
    got = resolve_symbols(
        "binance-coinm", ["BTCUSD_PERP", "BTCUSD_CURRENT_QUARTER", "BTCUSD_NEXT_QUARTER"], info
    )
    assert got.symbols == ["BTCUSD_PERP", "BTCUSD_670326", "BTCUSD_670625"]
    assert got.aliases == {
        "BTCUSD_CURRENT_QUARTER": "BTCUSD_670326",
        "BTCUSD_NEXT_QUARTER": "BTCUSD_670625",
    }
    info = asyncio.run(go({"BTCUSD_670326"}))
    rolled = resolve_symbols("binance-coinm", ["BTCUSD_CURRENT_QUARTER"], info)
    assert rolled.symbols == ["BTCUSD_670625"]
    with pytest.raises(ConfigError, match="BTCUSD_670326 is DELIVERED, no longer trading"):
        resolve_symbols("binance-coinm", ["BTCUSD_670326"], info)
    with pytest.raises(ConfigError, match="alias ETHUSD_CURRENT_QUARTER names no trading"):
        resolve_symbols("binance-coinm", ["ETHUSD_CURRENT_QUARTER"], info)


async def test_weight_header_holds_a_request_to_the_next_minute_before_a_429() -> None:
    sim = BinanceSimulator(["BTCUSDT"], venue="binance-usdm")
    await sim.start()
    start = time.monotonic()
    # A clock 0.3 s before a minute ends: the wait is short but real.
    offset = (time.time() // 60 + 1) * 60 - 0.3 - time.monotonic()
    m = market("binance-usdm")
    client = SnapshotClient(
        sim.base_url, depth_path=m.depth_path, depth_weight=m.depth_weight, weight_limit=25,
        venue="binance-usdm", clock=lambda: time.monotonic() + offset,
    )  # fmt: skip
    try:
        await client.fetch("BTCUSDT")  # weight 20 of 25 used
        assert client.used_weight == 20 and client.weight_waits == 0
        await client.fetch("BTCUSDT")  # 20 more would pass 90% of 25: wait for the minute
    finally:
        await client.close()
        await sim.stop()
    assert client.weight_waits == 1 and client.requests == 2
    assert time.monotonic() - start >= 0.25
    assert sim.snapshot_requests == 2  # never a refused one


async def test_418_and_429_are_obeyed_logged_once_and_counted() -> None:
    sim = BinanceSimulator(["BTCUSDT"], venue="binance-usdm")
    await sim.start()
    seen: list[int] = []
    client = SnapshotClient(
        sim.base_url, depth_path="/fapi/v1/depth", initial_backoff=0.01, max_backoff=0.05,
        venue="binance-usdm", on_venue_error=lambda _s, status, _m: seen.append(status),
    )  # fmt: skip
    try:
        sim.fail_rest(1, 429, retry_after=0.1)
        sim.fail_rest(1, 418, retry_after=0.3)  # a ban longer than max_backoff: still obeyed
        started = time.monotonic()
        with capture_logs() as logs:
            body, _ = await client.fetch("BTCUSDT")
        took = time.monotonic() - started
    finally:
        await client.close()
        await sim.stop()
    assert b"lastUpdateId" in body and seen == [429, 418]
    assert took >= 0.4 and client.rate_limited == 2
    warned = [e for e in logs if "rate limited" in e["event"]]
    assert len(warned) == 1 and warned[0]["status"] == 429

"""The recorder with all three Binance venues at once (spot, USD-M, COIN-M) against their
simulators on loopback, wired as `shriven run` wires them: disconnect storms, withheld diffs and
snapshots older than the stream; every gap is marked and resynced and verify-books finds no
difference between the book snapshots and the books rebuilt from the recorded records."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

from shriven.app.simulators import Simulators
from shriven.app.startup import add_binance_venue, wal_options
from shriven.config import Settings
from shriven.events import (
    BinanceFuturesDepth,
    BinanceMarkPrice,
    BinanceOpenInterest,
    BookSnapshot,
    Record,
    Status,
    StatusKind,
    stream_of,
)
from shriven.pipeline.daemon import Pipeline
from shriven.replay import verify_store
from shriven.universe.binance_recorded import load_listings
from shriven.wal import read_records

VENUES = ("binance", "binance-usdm", "binance-coinm")
SYMBOLS = {
    "binance": ["BTCUSDT", "ETHUSDT"],
    "binance-usdm": ["BTCUSDT", "ETHUSDT"],
    "binance-coinm": ["BTCUSD_PERP", "BTCUSD_CURRENT_QUARTER"],
}


async def wait_for(
    cond: Callable[[], bool], what: str, timeout: float = 45.0, state: object = None
) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {state}"
        await asyncio.sleep(0.05)


def settings_for(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        cache_dir=tmp_path / "cache",
        health_port=0,
        binance_reconnect_initial_secs=0.05,
        binance_reconnect_max_secs=0.3,
        binance_rest_max_backoff_secs=0.5,
        binance_open_interest_secs=0.5,
        binance_stall_secs=2.0,
        pipeline={"data_dir": str(tmp_path / "market"), "snapshot_interval_secs": 1},  # type: ignore[arg-type]
    )


def all_valid(pipeline: Pipeline, keys: list[str]) -> bool:
    keeper = pipeline.books
    return all(keeper.is_valid(k) for k in keys)


async def test_three_binance_venues_through_storms_and_stale_snapshots(tmp_path: Path) -> None:
    sims = Simulators(seed=5)
    settings = await sims.start(
        settings_for(tmp_path),
        VENUES,
        binance_symbols=SYMBOLS["binance"],
        futures_symbols={
            "binance-usdm": SYMBOLS["binance-usdm"],
            # the simulator lists the dated contract under its own name; the recorder is
            # configured by alias
            "binance-coinm": ["BTCUSD_PERP", "BTCUSD_681229"],
        },
        keep_ledgers=True,
    )
    settings = settings.model_copy(update={"binance_coinm_symbols": SYMBOLS["binance-coinm"]})
    cfg = settings.pipeline
    pipeline = Pipeline(cfg, wal=wal_options(cfg), health_port=None, quiet=True)
    for venue in VENUES:
        await add_binance_venue(pipeline, settings, venue)
    keys = [
        *(f"binance:{s}" for s in SYMBOLS["binance"]),
        *(f"binance-usdm:{s}" for s in SYMBOLS["binance-usdm"]),
        "binance-coinm:BTCUSD_PERP",
        "binance-coinm:BTCUSD_681229",
    ]
    sim_of = {"binance": sims.binance, **sims.futures}
    await pipeline.start()
    try:
        await wait_for(
            lambda: all_valid(pipeline, keys), "every book in sync", state=pipeline.feed_stats()
        )
        for round_ in range(3):  # a disconnect storm on every venue at once
            for sim in sim_of.values():
                assert sim is not None
                await sim.drop_connections(abrupt=bool(round_ % 2))
            await asyncio.sleep(0.3)
        for sim in sim_of.values():
            assert sim is not None
            symbol = next(iter(sim.books))
            sim.serve_stale_snapshots(1, lag=60)  # older than the stream it will meet
            sim.inject_gap(symbol, 2)
        await asyncio.sleep(1.0)
        await wait_for(lambda: all_valid(pipeline, keys), "every book back in sync")
        await wait_for(
            lambda: all(f.stats.resyncs >= 2 for f in pipeline.feeds), "resyncs after the faults"
        )
        await asyncio.sleep(2.2)  # book snapshots of the resynced books
        # Each venue's market data counts for /health's "last data" (a futures feed is not stale).
        assert set(pipeline.stats.last_data_ns) >= set(VENUES)
    finally:
        pipeline.request_stop("test over")
        await pipeline.shutdown()
        await sims.stop()

    data_dir = Path(cfg.data_dir)
    records: list[Record] = list(read_records(data_dir / "ticks"))
    # Each venue is its own stream, numbered without a hole.
    for venue in VENUES:
        seqs = [r.seq for r in records if stream_of(r) == venue]
        assert seqs and seqs == list(range(1, len(seqs) + 1)), venue
    # Every gap is followed by a resync of the same book.
    for venue in VENUES:
        marks = [r for r in records if type(r) is Status and r.venue == venue]
        gaps = [m for m in marks if m.kind == StatusKind.GAP]
        assert gaps, f"{venue}: the faults made no gap"
        for g in gaps:
            assert any(
                m.kind == StatusKind.RESYNCED
                and m.instrument == g.instrument
                and m.recv_ns >= g.recv_ns
                for m in marks
            ), f"{venue}: gap on {g.instrument} never resynced"
    assert any(type(r) is BinanceFuturesDepth and r.venue == "binance-coinm" for r in records)
    assert any(type(r) is BinanceMarkPrice for r in records)
    assert any(type(r) is BinanceOpenInterest and r.venue == "binance-usdm" for r in records)
    lob = [r for r in read_records(data_dir / "lob") if type(r) is BookSnapshot]
    assert {f"{s.venue}:{s.instrument}" for s in lob} == set(keys)
    result = verify_store(data_dir)
    assert result.report.pairs > 0 and result.report.differences == []
    listings = load_listings(data_dir)
    assert listings["binance-coinm"]["BTCUSD_681229"].contract_type == "CURRENT_QUARTER"
    assert listings["binance-usdm"]["BTCUSDT"].tick_size == "0.01000000"
    meta = json.loads((data_dir / "metadata.json").read_text())
    assert meta

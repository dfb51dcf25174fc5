"""With an fsync after every frame the recorder commits in groups: each frame holds what arrived
while the previous write and fsync were in flight, and nothing waits for the batch window."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from shriven.app.startup import wal_options
from shriven.events import KiteTick, Record, decode_batch
from shriven.pipeline.daemon import Pipeline
from shriven.wal import read_records

from .test_writer import ListFeed, config, kite_ticks


async def test_fsync_always_makes_records_durable_without_waiting_for_the_batch_window(
    tmp_path: Path,
) -> None:
    # A window far longer than the test may run: the old recorder held the first records
    # until 5,000 had come or 30 s had passed.
    cfg = config(tmp_path, fsync_policy="always", batch_max_ms=30_000, batch_max_records=5_000)
    ticks = kite_ticks(3, time.time_ns())
    p = Pipeline(cfg, wal=wal_options(cfg), health_port=None)
    durable: list[Record] = []
    p.add_tap(durable.extend, durable=True)
    feed = ListFeed(p, ticks)
    p.add_feed(feed)
    await p.start()
    try:
        deadline = time.monotonic() + 10
        while sum(type(r) is KiteTick for r in durable) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        durable_while_running = [r for r in durable if type(r) is KiteTick]
        syncs = p.stats.syncs
    finally:
        await p.shutdown()
    assert durable_while_running == ticks
    assert syncs >= 1
    on_disk = [r for r in read_records(cfg.data_dir / "ticks") if type(r) is KiteTick]
    assert on_disk == ticks


async def test_a_prompt_payload_tap_gets_each_batch_without_waiting_for_the_batch_window(
    tmp_path: Path,
) -> None:
    # The live server's tap: with the default fsync policy the old recorder held the first
    # records for the whole window (here far longer than the test may run) before the tap.
    cfg = config(tmp_path, batch_max_ms=30_000, batch_max_records=5_000)
    ticks = kite_ticks(3, time.time_ns())
    p = Pipeline(cfg, wal=wal_options(cfg), health_port=None)
    payloads: list[bytes] = []
    p.add_payload_tap(payloads.append, prompt=True)
    p.add_feed(ListFeed(p, ticks))
    await p.start()
    try:
        deadline = time.monotonic() + 10
        while len(_ticks(payloads)) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        handed_while_running = _ticks(payloads)
    finally:
        await p.shutdown()
    assert handed_while_running == ticks


def _ticks(payloads: list[bytes]) -> list[Record]:
    return [r for payload in payloads for r in decode_batch(payload) if type(r) is KiteTick]

"""What used to stop the writer taking records, and so piled them up in memory: a snapshot
round's fsyncs, and full garbage collections over every start-up object."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from pathlib import Path

from shriven.app.startup import wal_options
from shriven.config import PipelineConfig
from shriven.events import KiteTick
from shriven.pipeline.daemon import Pipeline
from shriven.pipeline.memory import freeze_long_lived
from shriven.wal import StoreWriter, WalOptions
from shriven.wal.writer import WalWriter


class HeldLobWal(WalWriter):
    """A real LOB WAL whose fsync waits for the test, like a disk that takes its time."""

    holding = threading.Event()
    release = threading.Event()

    def sync(self) -> None:
        cls = type(self)
        if not cls.release.is_set():
            cls.holding.set()
            cls.release.wait(30)
        super().sync()


class HeldLobStore(StoreWriter):
    def __init__(self, data_dir: Path, options: WalOptions) -> None:
        super().__init__(data_dir, options)
        self.lob.__class__ = HeldLobWal


def tick(i: int) -> KiteTick:
    px = 2_500_000 + i * 5
    bids, asks = ((px - 5, 10, 1),), ((px + 5, 9, 1),)
    return KiteTick(time.time_ns(), i + 1, 12_345_602, "full", px, bids=bids, asks=asks)


async def test_ticks_are_written_while_a_snapshot_round_waits_for_its_fsync(tmp_path: Path) -> None:
    # Awaited, the round's LOB fsync and metadata.json write held every record arriving
    # meanwhile in the queue: the peaks of records in flight came at snapshot rounds.
    cfg = PipelineConfig(data_dir=tmp_path / "market", snapshot_interval_secs=1)
    p = Pipeline(
        cfg, open_store=lambda: HeldLobStore(cfg.data_dir, wal_options(cfg)), health_port=None
    )
    HeldLobWal.holding.clear()
    HeldLobWal.release.clear()
    await p.start()
    try:
        await p.queue.put(tick(0))  # a book, so that the round has a snapshot to write
        assert await asyncio.to_thread(HeldLobWal.holding.wait, 30)
        before = p.stats.records_written
        for i in range(1, 201):
            await p.queue.put(tick(i))
        deadline = time.monotonic() + 10
        while p.stats.records_written < before + 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        written_while_held = p.stats.records_written - before
        assert HeldLobWal.holding.is_set() and not HeldLobWal.release.is_set()
    finally:
        HeldLobWal.release.set()
        await p.shutdown()
    assert written_while_held == 200
    assert p.stats.snapshot_rounds >= 1  # the held round was written once released


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_freezing_keeps_older_objects_out_of_full_collections_and_frees_their_cycles() -> None:
    try:
        kept = Node()
        cycle = Node()
        cycle.other = Node()
        cycle.other.other = cycle
        freeze_long_lived()
        tracked = {id(o) for o in gc.get_objects()}
        assert id(kept) not in tracked and id(cycle) not in tracked  # a full collection skips them
        young = Node()
        assert id(young) in {id(o) for o in gc.get_objects()}
        # garbage cycles among frozen objects are freed by the next freeze's collection
        gone = weakref.ref(cycle)
        del cycle
        freeze_long_lived()
        assert gone() is None
        assert id(kept) not in {id(o) for o in gc.get_objects()}
    finally:
        gc.unfreeze()  # the rest of the test session collects as usual


async def test_while_the_writer_is_held_the_feeds_wait_at_the_soft_limit(tmp_path: Path) -> None:
    from .test_memory import HeldSyncStore, HeldSyncWal
    from .test_writer import ListFeed

    cfg = PipelineConfig(data_dir=tmp_path / "market", fsync_policy="always", queue_soft_limit=100)
    p = Pipeline(
        cfg, open_store=lambda: HeldSyncStore(cfg.data_dir, wal_options(cfg)), health_port=None
    )
    HeldSyncWal.hold_after = 1  # the `started` marker's frame: its fsync waits
    HeldSyncWal.holding.clear()
    HeldSyncWal.release.clear()
    feed = ListFeed(p, [tick(i) for i in range(1_000)])
    p.add_feed(feed)
    await p.start()
    try:
        assert await asyncio.to_thread(HeldSyncWal.holding.wait, 30)
        deadline = time.monotonic() + 10
        while p.queue.stats.paced == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        depth, done = len(p.queue), feed.done.is_set()
    finally:
        HeldSyncWal.release.set()
    try:
        await asyncio.wait_for(feed.done.wait(), 30)
    finally:
        await p.shutdown()
    assert depth == 100 and not done  # not the 1,000 records the feed had
    assert p.stats.records_written == 1_000 + 2  # and the started/stopped markers: none lost

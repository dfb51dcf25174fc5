"""What `shriven run` keeps in memory does not grow with the records it writes (the soak figure
is benchmarks/soak_rss.py)."""

from __future__ import annotations

import asyncio
import platform
import sys
import threading
import time
from pathlib import Path

import pytest

from shriven.app.simulators import Simulators
from shriven.app.startup import wal_options
from shriven.config import PipelineConfig, load_settings
from shriven.events import KiteTick
from shriven.pipeline.daemon import Pipeline
from shriven.pipeline.memory import fix_mmap_threshold
from shriven.wal import StoreWriter, WalOptions
from shriven.wal.writer import WalWriter

from .test_writer import ListFeed


async def test_run_sim_keeps_a_bounded_binance_ledger_and_diff_history(tmp_path, monkeypatch):
    (tmp_path / "shriven.toml").write_text("")
    monkeypatch.setenv("SHRIVEN_CONFIG_FILE", str(tmp_path / "shriven.toml"))
    sims = Simulators()
    await sims.start(load_settings(cache_dir=tmp_path), ["binance"])
    try:
        assert sims.binance is not None
        for _ in range(5_000):  # about eight minutes of the simulator's events
            sims.binance.step()
        assert all(len(book.history) <= 1_024 for book in sims.binance.books.values())
        assert sims.binance.ledger.maxlen is not None and sims.binance.ledger.maxlen <= 256
    finally:
        await sims.stop()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_the_mmap_threshold_is_pinned_unless_the_user_chose_one(monkeypatch):
    assert fix_mmap_threshold() is True
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert fix_mmap_threshold() is False


class HeldSyncWal(WalWriter):
    """A real tick WAL whose fsync waits for the test, like a disk that takes its time."""

    hold_after = 0  # records written before the fsync that waits
    holding = threading.Event()
    release = threading.Event()

    def sync(self) -> None:
        cls = type(self)
        if self.records_written >= cls.hold_after and not cls.release.is_set():
            cls.holding.set()
            cls.release.wait(30)
        super().sync()


class HeldSyncStore(StoreWriter):
    def __init__(self, data_dir: Path, options: WalOptions) -> None:
        super().__init__(data_dir, options)
        self.ticks.__class__ = HeldSyncWal


async def test_the_recorder_lets_go_of_a_written_batch_before_its_fsync(tmp_path: Path) -> None:
    # While an fsync is slow, records keep arriving; holding the batch already written too
    # doubles what is in memory at that peak, and the allocator keeps its high water.
    cfg = PipelineConfig(data_dir=tmp_path / "market", fsync_policy="interval", fsync_interval_ms=1)
    p = Pipeline(
        cfg, open_store=lambda: HeldSyncStore(cfg.data_dir, wal_options(cfg)), health_port=None
    )
    ticks = [KiteTick(time.time_ns() + i, i + 1, 256_265, "ltp", 2_500_000 + i) for i in range(500)]
    alone = [sys.getrefcount(ticks[i]) for i in range(len(ticks))]
    HeldSyncWal.hold_after = len(ticks) + 1  # and the `started` marker
    HeldSyncWal.holding.clear()
    HeldSyncWal.release.clear()
    feed = ListFeed(p, ticks)
    p.add_feed(feed)
    await p.start()
    try:
        assert await asyncio.to_thread(HeldSyncWal.holding.wait, 30)
        held = [sys.getrefcount(ticks[i]) - alone[i] for i in range(len(ticks))]
        written = p.stats.records_written
    finally:
        HeldSyncWal.release.set()
        await p.shutdown()
    assert written >= len(ticks)
    # nothing refers to the written records but the list they came from (and the feed's loop
    # variable to the last one)
    assert sum(held[:-1]) == 0

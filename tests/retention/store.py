"""A store with one segment per day in each WAL, written through the real StoreWriter."""

from __future__ import annotations

from pathlib import Path

from shriven.events import Status
from shriven.wal import StoreWriter, WalOptions

NS = 1_000_000_000
DAY = 86_400 * NS
T0 = 1_795_146_300 * NS  # 2026-11-20T09:15:00+05:30


def day_store(path: Path, days: int, records_per_day: int = 200) -> Path:
    """``days`` writer sessions a day apart: each opens new ticks and lob segments."""
    seq = 0
    for d in range(days):
        with StoreWriter(path, WalOptions(compression=False, fsync_policy="never")) as store:
            batch = []
            for i in range(records_per_day):
                seq += 1
                batch.append(Status(T0 + d * DAY + i * NS, seq, "system", "started", "", "x" * 40))
            store.append_ticks(batch)
            store.append_lob(batch[:10])
    return path

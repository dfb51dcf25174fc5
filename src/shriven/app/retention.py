"""Retention of a store, by hand (``shriven wal prune``) or inside ``run``, coordinated through
the store lock.

The store lock (``pipeline/lock.py``) says whether a recorder is writing. When none is, pruning
takes the lock for its duration (a recorder starting meanwhile is refused and, under systemd,
restarted a few seconds later), removes the segments and rewrites metadata.json. When one is,
the newest segment of each WAL is the one it fills; only older ones, which it never touches
again, are removed, and metadata.json is left to the recorder, which rewrites it from the
segments on disk at its next snapshot boundary (``snapshot_interval_secs``). Inside ``run`` the
recorder itself holds the lock and prunes the same way.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from shriven.errors import StoreLockedError
from shriven.logging import get_logger
from shriven.pipeline.daemon import Pipeline
from shriven.pipeline.lock import DataDirLock
from shriven.wal.prune import Segment, plan_prune, remove_segments, rewrite_metadata

log = get_logger("shriven.app.retention")

RETENTION_EVERY_S = 600.0


@dataclass(slots=True)
class PruneResult:
    segments: list[Segment]
    freed_bytes: int
    recorder_running: bool  # metadata.json then follows at the recorder's next snapshot


def prune_store(
    data_dir: Path,
    keep_days: float | None = None,
    keep_bytes: int | None = None,
    *,
    dry_run: bool = False,
    now_ns: int | None = None,
) -> PruneResult:
    """Remove what :func:`plan_prune` chooses (nothing with ``dry_run``)."""
    lock = DataDirLock(Path(data_dir))
    running = False
    if not dry_run:
        try:
            lock.acquire()
        except StoreLockedError:
            running = True
    try:
        plan = plan_prune(Path(data_dir), keep_days, keep_bytes, now_ns)
        if dry_run:
            return PruneResult(plan, 0, running)
        freed = remove_segments(plan)
        if plan and not running:
            rewrite_metadata(Path(data_dir))
        return PruneResult(plan, freed, running)
    finally:
        lock.release()


async def retention_loop(
    data_dir: Path,
    keep_days: float | None,
    keep_bytes: int | None,
    every_s: float = RETENTION_EVERY_S,
) -> None:
    """Inside ``run`` (which holds the lock): prune every ``every_s`` seconds, off the event
    loop. metadata.json follows at the next snapshot."""
    while True:
        plan = await asyncio.to_thread(plan_prune, data_dir, keep_days, keep_bytes)
        if plan:
            freed = await asyncio.to_thread(remove_segments, plan)
            log.info("retention removed old segments", segments=len(plan), bytes=freed)
        await asyncio.sleep(every_s)


def add_retention(
    pipeline: Pipeline, keep_days: float | None, keep_bytes: int | None, every_s: float
) -> None:
    """Run :func:`retention_loop` as one of the pipeline's background jobs."""
    data_dir = Path(pipeline.config.data_dir)
    pipeline.add_task(
        "shriven-retention", lambda: retention_loop(data_dir, keep_days, keep_bytes, every_s)
    )

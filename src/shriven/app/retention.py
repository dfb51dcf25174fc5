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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from shriven.config import Settings
from shriven.errors import StoreLockedError
from shriven.logging import get_logger
from shriven.pipeline.daemon import Pipeline
from shriven.pipeline.lock import DataDirLock
from shriven.wal.prune import Segment, plan_prune, remove_segments, rewrite_metadata

if TYPE_CHECKING:
    from shriven.archive import ArchiveResult, RestoreResult
    from shriven.archive.target import S3Credentials

log = get_logger("shriven.app.retention")

RETENTION_EVERY_S = 600.0


@dataclass(slots=True)
class PruneResult:
    segments: list[Segment]
    freed_bytes: int
    recorder_running: bool  # metadata.json then follows at the recorder's next snapshot


def _claim(data_dir: Path, dry_run: bool) -> tuple[DataDirLock, bool]:
    """The store lock taken when no recorder holds it; and whether one does (then the caller
    leaves metadata.json to it). A dry run takes nothing."""
    lock = DataDirLock(data_dir)
    if dry_run:
        return lock, False
    try:
        lock.acquire()
    except StoreLockedError:
        return lock, True
    return lock, False


def prune_store(
    data_dir: Path,
    keep_days: float | None = None,
    keep_bytes: int | None = None,
    *,
    dry_run: bool = False,
    now_ns: int | None = None,
) -> PruneResult:
    """Remove what :func:`plan_prune` chooses (nothing with ``dry_run``)."""
    lock, running = _claim(Path(data_dir), dry_run)
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


def s3_credentials(settings: Settings) -> S3Credentials:
    """The archive's S3 endpoint and keys from the settings (secrets stay SecretStr until here)."""
    from shriven.archive.target import S3Credentials

    def secret(v: SecretStr | None) -> str | None:
        return v.get_secret_value() if v is not None else None

    return S3Credentials(
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=secret(settings.s3_access_key_id),
        secret_access_key=secret(settings.s3_secret_access_key),
    )


@dataclass(slots=True)
class ArchiveRun:
    planned: list[Segment]
    result: ArchiveResult | None  # None for a dry run
    recorder_running: bool


def archive_store(
    data_dir: Path,
    where: str,
    credentials: S3Credentials,
    *,
    keep_days: float | None = None,
    keep_bytes: int | None = None,
    level: int = 19,
    dictionary: bool = False,
    dry_run: bool = False,
    progress: Callable[[Segment, int, int], None] | None = None,
) -> ArchiveRun:
    """Archive the sealed segments ``keep_days``/``keep_bytes`` would prune (every sealed one
    when neither is given) to ``where``, removing each local copy once verified there."""
    from shriven.archive import archive_segments, open_destination
    from shriven.archive.archiver import train_dictionary
    from shriven.wal.prune import sealed_segments

    dest = open_destination(where, credentials)
    lock, running = _claim(Path(data_dir), dry_run)
    try:
        if keep_days is None and keep_bytes is None:
            by_wal = sealed_segments(Path(data_dir))
            plan = sorted(
                (s for segs in by_wal.values() for s in segs),
                key=lambda s: (s.last_ns, s.wal, s.path.name),
            )
        else:
            plan = plan_prune(Path(data_dir), keep_days, keep_bytes)
        if dry_run:
            return ArchiveRun(plan, None, running)
        zdict = train_dictionary(plan) if dictionary and plan else None
        result = archive_segments(
            Path(data_dir), plan, dest, level=level, dictionary=zdict, progress=progress
        )
        if result.archived and not running:
            rewrite_metadata(Path(data_dir))
        return ArchiveRun(plan, result, running)
    finally:
        lock.release()


def restore_store(where: str, data_dir: Path, credentials: S3Credentials) -> RestoreResult:
    """Restore every archived segment at ``where`` into ``data_dir`` (no recorder may be
    writing there: restored segments change what metadata.json must say)."""
    from shriven.archive import open_destination, restore_segments

    dest = open_destination(where, credentials)
    lock = DataDirLock(Path(data_dir))
    try:
        lock.acquire()
    except StoreLockedError as exc:
        raise StoreLockedError(
            f"{exc}; restore into another directory, or stop the recorder first"
        ) from None
    try:
        result = restore_segments(dest, Path(data_dir))
        rewrite_metadata(Path(data_dir))
        return result
    finally:
        lock.release()

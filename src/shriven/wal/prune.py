"""Retention: which sealed segments of a store go, and removing them with metadata.json kept right.

A segment is *sealed* once its writer has moved on: every segment of a WAL but the newest. The
newest is never removed, whether a writer is filling it now or a crashed writer left it for the
next one to recover. Segments go from the front (oldest first) so a store always holds one
contiguous stretch of time. Who may rewrite metadata.json is the caller's business: the recorder
rewrites it itself at each snapshot boundary, so while one runs this module leaves the file alone
(see ``shriven.app.retention``, which decides that through the store lock).

``instruments.json`` is kept whole: it is a lookup table that only grows, and its rows for pruned
days describe nothing wrongly.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from shriven.clock import iso_time
from shriven.errors import ConfigError, NotAStoreError
from shriven.logging import get_logger
from shriven.wal.format import index_path, list_segments
from shriven.wal.index import load_index
from shriven.wal.store import (
    METADATA_FILE,
    STREAMS,
    segment_stream_counts,
    stream_summary,
    write_json_atomically,
)

log = get_logger("shriven.wal.prune")

_NS_PER_DAY = 86_400 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class Segment:
    """One sealed segment on disk: its WAL (``ticks`` or ``lob``), file, size and newest record."""

    wal: str
    path: Path
    bytes: int
    last_ns: int  # newest recv_ns in its index; the file's mtime when the index has none

    @property
    def files(self) -> tuple[Path, ...]:
        idx = index_path(self.path)
        return (self.path, idx) if idx.exists() else (self.path,)


def sealed_segments(data_dir: Path) -> dict[str, list[Segment]]:
    """Per WAL, its sealed segments oldest first (all but the newest)."""
    out: dict[str, list[Segment]] = {}
    for wal in STREAMS:
        found = list_segments(Path(data_dir) / wal)
        sealed = []
        for _n, path in found[:-1]:
            st = path.stat()
            entries = load_index(path, st.st_size)
            last = max((e.max_ns for e in entries), default=st.st_mtime_ns)
            size = st.st_size + sum(p.stat().st_size for p in (index_path(path),) if p.exists())
            sealed.append(Segment(wal, path, size, last))
        out[wal] = sealed
    return out


def store_bytes(data_dir: Path) -> int:
    """Bytes of every segment and index in the store's WALs."""
    total = 0
    for wal in STREAMS:
        for _n, path in list_segments(Path(data_dir) / wal):
            total += path.stat().st_size
            idx = index_path(path)
            if idx.exists():
                total += idx.stat().st_size
    return total


def plan_prune(
    data_dir: Path,
    keep_days: float | None = None,
    keep_bytes: int | None = None,
    now_ns: int | None = None,
) -> list[Segment]:
    """The sealed segments to remove, oldest first: those whose newest record is older than
    ``keep_days``, then more from the front (oldest newest-record first, across both WALs)
    until the store fits in ``keep_bytes``. Neither given: nothing."""
    data_dir = Path(data_dir)
    if not any((data_dir / wal).is_dir() for wal in STREAMS):
        raise NotAStoreError(
            f"{data_dir} is not a store (no ticks/ or lob/): give a data directory"
        )
    if keep_days is not None and keep_days < 0:
        raise ConfigError(f"bad --keep-days {keep_days}: use 0 or more")
    now = time.time_ns() if now_ns is None else now_ns
    fronts = {wal: list(segs) for wal, segs in sealed_segments(data_dir).items()}
    chosen: list[Segment] = []
    if keep_days is not None:
        cutoff = now - int(keep_days * _NS_PER_DAY)
        for segs in fronts.values():
            while segs and segs[0].last_ns < cutoff:
                chosen.append(segs.pop(0))
    if keep_bytes is not None:
        total = store_bytes(data_dir) - sum(s.bytes for s in chosen)
        while total > keep_bytes:
            heads = [segs[0] for segs in fronts.values() if segs]
            if not heads:
                break
            oldest = min(heads, key=lambda s: s.last_ns)
            fronts[oldest.wal].pop(0)
            chosen.append(oldest)
            total -= oldest.bytes
    return sorted(chosen, key=lambda s: (s.last_ns, s.wal, s.path.name))


def remove_segments(segments: list[Segment]) -> int:
    """Delete each segment and its index (the segment first: an index without its segment is
    ignored by every reader). Returns the bytes freed."""
    freed = 0
    for seg in segments:
        for path in seg.files:
            try:
                freed += path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                continue
        log.info("segment removed", wal=seg.wal, file=seg.path.name, bytes=seg.bytes)
    return freed


def rewrite_metadata(data_dir: Path) -> None:
    """metadata.json for the segments on disk now, with no writer open (the caller holds the
    store lock). Per-segment counts come from the previous file where it still describes the
    segment; the WAL's codec is carried over."""
    data_dir = Path(data_dir)
    path = data_dir / METADATA_FILE
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        old_streams = old.get("streams", {}) if isinstance(old, dict) else {}
    except (OSError, ValueError):
        old, old_streams = {}, {}
    document: dict[str, object] = {
        k: v for k, v in (old if isinstance(old, dict) else {}).items() if k != "streams"
    }
    streams: dict[str, object] = {}
    for wal in STREAMS:
        before = old_streams.get(wal) if isinstance(old_streams.get(wal), dict) else {}
        known = {
            s["file"]: s
            for s in before.get("segments", [])
            if isinstance(s, dict) and "by_stream" in s
        }
        counts = segment_stream_counts(data_dir / wal, known)
        summary = stream_summary(data_dir / wal, None, counts)
        if "codec" in before:
            summary = {**summary, "codec": before["codec"]}
        streams[wal] = summary
    now = time.time_ns()
    document.update({"updated_ns": now, "updated": iso_time(now), "streams": streams})
    write_json_atomically(path, document)

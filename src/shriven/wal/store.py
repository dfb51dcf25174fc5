"""``MarketStore``: the two WALs of a data directory and its ``metadata.json``.

``data_dir/ticks/`` holds every record received; ``data_dir/lob/`` holds book snapshots.
``metadata.json`` is rewritten atomically (temp file, fsync, rename, fsync of the directory) when
the store opens, when a writer starts a new segment through the store, and on ``write_metadata()``
and ``close()``. Its figures come from the segment indexes, so they are exact whenever written.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

from shriven.config import PipelineConfig
from shriven.events import Record
from shriven.wal.format import CODEC_NAMES, FORMAT_VERSION, list_segments
from shriven.wal.index import IndexEntry, load_index
from shriven.wal.writer import WalWriter, _fsync_dir

METADATA_FILE = "metadata.json"
STREAMS = ("ticks", "lob")


def segment_summary(path: Path, extra: IndexEntry | None = None) -> dict[str, int | str | None]:
    """What one segment holds, from its index (plus ``extra``, an entry not yet in the file)."""
    size = path.stat().st_size
    entries = load_index(path, size)
    if extra is not None:
        entries.append(extra)
    first = min((e.min_ns for e in entries), default=None)
    last = max((e.max_ns for e in entries), default=None)
    return {
        "file": path.name,
        "bytes": size,
        "frames": sum(e.frames for e in entries),
        "records": sum(e.records for e in entries),
        "first_ns": first,
        "last_ns": last,
    }


def stream_summary(directory: Path, writer: WalWriter | None = None) -> dict[str, object]:
    pending = writer.pending_index_entry() if writer is not None else None
    active = writer.segment_path if writer is not None else None
    segments = [
        segment_summary(path, pending if path == active else None)
        for _n, path in list_segments(directory)
    ]
    firsts = [s["first_ns"] for s in segments if s["first_ns"] is not None]
    lasts = [s["last_ns"] for s in segments if s["last_ns"] is not None]
    out: dict[str, object] = {
        "directory": directory.name,
        "records": sum(int(s["records"] or 0) for s in segments),
        "bytes": sum(int(s["bytes"] or 0) for s in segments),
        "first_ns": min(firsts, default=None),  # type: ignore[type-var]
        "last_ns": max(lasts, default=None),  # type: ignore[type-var]
        "segments": segments,
    }
    if writer is not None:
        out["codec"] = CODEC_NAMES[1 if writer.compression else 0]
    return out


def write_json_atomically(path: Path, document: dict[str, object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class MarketStore:
    """Opens ``ticks`` and ``lob`` writers under ``data_dir`` with the pipeline's WAL settings."""

    def __init__(self, data_dir: str | os.PathLike[str], config: PipelineConfig | None = None):
        cfg = config if config is not None else PipelineConfig()
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        options = {
            "segment_size": cfg.wal_segment_size,
            "compression": cfg.enable_compression,
            "fsync_policy": cfg.fsync_policy,
            "fsync_interval_ms": cfg.fsync_interval_ms,
        }
        self.ticks = WalWriter(self.data_dir / "ticks", **options)  # type: ignore[arg-type]
        try:
            self.lob = WalWriter(self.data_dir / "lob", **options)  # type: ignore[arg-type]
        except Exception:
            self.ticks.close()
            raise
        self._segments_seen = (self.ticks.segments_created, self.lob.segments_created)
        self.write_metadata()

    def append_ticks(self, records: Sequence[Record]) -> int:
        n = self.ticks.append(records)
        self._metadata_on_rotation()
        return n

    def append_lob(self, records: Sequence[Record]) -> int:
        n = self.lob.append(records)
        self._metadata_on_rotation()
        return n

    def _metadata_on_rotation(self) -> None:
        seen = (self.ticks.segments_created, self.lob.segments_created)
        if seen != self._segments_seen:
            self._segments_seen = seen
            self.write_metadata()

    def sync(self) -> None:
        self.ticks.sync()
        self.lob.sync()

    def metadata(self) -> dict[str, object]:
        return {
            "format": "shriven-wal",
            "format_version": FORMAT_VERSION,
            "updated_ns": time.time_ns(),
            "streams": {
                "ticks": stream_summary(self.data_dir / "ticks", self.ticks),
                "lob": stream_summary(self.data_dir / "lob", self.lob),
            },
        }

    def write_metadata(self) -> None:
        write_json_atomically(self.data_dir / METADATA_FILE, self.metadata())

    def close(self) -> None:
        try:
            self.ticks.close()
            self.lob.close()
        finally:
            self.write_metadata()

    def __enter__(self) -> MarketStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

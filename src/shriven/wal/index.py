"""The sparse time index beside each segment (``segment_N.idx``).

One entry covers a run of consecutive frames (about ``index_interval`` bytes of segment) and says
where it starts, how many bytes it spans and the smallest and largest ``recv_ns`` in it. The index
only accelerates reads: readers check it (entry CRCs, contiguity, the segment's size) and scan the
frames it does not cover, so a missing, torn or stale index costs time, never records.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from shriven.files import atomic_write
from shriven.wal.format import (
    FRAME_HEAD,
    FRAME_HEADER_SIZE,
    FRAME_MAGIC,
    INDEX_ENTRY,
    INDEX_ENTRY_BODY,
    INDEX_HEADER,
    INDEX_MAGIC,
    INDEX_VERSION,
    MAX_PAYLOAD,
    SEGMENT_HEADER_SIZE,
    index_path,
)


@dataclass(slots=True)
class IndexEntry:
    offset: int
    span: int
    min_ns: int
    max_ns: int
    records: int
    frames: int

    @property
    def end(self) -> int:
        return self.offset + self.span


def pack_index_header(segment_number: int, created_ns: int) -> bytes:
    return INDEX_HEADER.pack(INDEX_MAGIC, INDEX_VERSION, segment_number, created_ns)


def pack_entry(e: IndexEntry) -> bytes:
    body = INDEX_ENTRY_BODY.pack(e.offset, e.span, e.min_ns, e.max_ns, e.records, e.frames)
    return body + zlib.crc32(body).to_bytes(4, "little")


def load_index(segment: Path, segment_size: int | None = None) -> list[IndexEntry]:
    """The valid prefix of a segment's index: entries whose CRC checks, that follow each other
    from the first frame, and that end inside the segment. Missing or foreign index -> []."""
    try:
        data = index_path(segment).read_bytes()
        if segment_size is None:
            segment_size = segment.stat().st_size
    except OSError:
        return []
    if len(data) < INDEX_HEADER.size:
        return []
    magic, version, _number, _created = INDEX_HEADER.unpack_from(data, 0)
    if magic != INDEX_MAGIC or version != INDEX_VERSION:
        return []
    entries: list[IndexEntry] = []
    expect = SEGMENT_HEADER_SIZE
    pos = INDEX_HEADER.size
    size = INDEX_ENTRY.size
    while pos + size <= len(data):
        off, span, mn, mx, recs, frames, crc = INDEX_ENTRY.unpack_from(data, pos)
        if crc != zlib.crc32(data[pos : pos + INDEX_ENTRY_BODY.size]):
            break
        if off != expect or span <= 0 or off + span > segment_size:
            break
        entries.append(IndexEntry(off, span, mn, mx, recs, frames))
        expect = off + span
        pos += size
    return entries


def covered_end(entries: list[IndexEntry]) -> int:
    return entries[-1].end if entries else SEGMENT_HEADER_SIZE


def scan_entries(segment: Path, interval: int) -> list[IndexEntry]:
    """Build index entries by reading frame headers only (payloads are skipped, not checked),
    stopping at the first header that is not a plausible complete frame."""
    entries: list[IndexEntry] = []
    group: IndexEntry | None = None
    with open(segment, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        pos = SEGMENT_HEADER_SIZE
        while pos + FRAME_HEADER_SIZE <= size:
            f.seek(pos)
            head = f.read(FRAME_HEADER_SIZE)
            magic, plen, count, _raw, mn, mx, _flags = FRAME_HEAD.unpack_from(head, 0)
            end = pos + FRAME_HEADER_SIZE + plen
            if magic != FRAME_MAGIC or plen > MAX_PAYLOAD or end > size:
                break
            if group is None:
                group = IndexEntry(pos, 0, mn, mx, 0, 0)
            group.span = end - group.offset
            group.min_ns = min(group.min_ns, mn)
            group.max_ns = max(group.max_ns, mx)
            group.records += count
            group.frames += 1
            if group.span >= interval:
                entries.append(group)
                group = None
            pos = end
    if group is not None:
        entries.append(group)
    return entries


def write_index(segment: Path, number: int, created_ns: int, entries: list[IndexEntry]) -> None:
    """Replace the segment's index atomically (readers see the old index or the new one)."""
    data = pack_index_header(number, created_ns) + b"".join(pack_entry(e) for e in entries)
    atomic_write(index_path(segment), data, mode=0o644)

"""Verifying and summarising WAL directories (what ``shriven wal check`` and ``stats`` print).

``check`` reads every byte: each frame's CRC, its decompression, and every record's decoding.
``stats`` reads only the indexes, so it is instant on any size of store.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import zstandard

from shriven.errors import NotAStoreError
from shriven.wal.format import (
    CODEC_NAMES,
    FLAG_ZSTD,
    FRAME_HEADER,
    FRAME_HEADER_SIZE,
    SEGMENT_HEADER_SIZE,
    list_segments,
    parse_segment_header,
)
from shriven.wal.gc import paused_gc
from shriven.wal.index import covered_end, load_index
from shriven.wal.reader import ReadStats, _scan_segment, unpack_frame

STORE_STREAMS = ("ticks", "lob")


@dataclass(slots=True)
class SegmentCheck:
    path: Path
    codec: str
    bytes: int
    frames: int = 0
    records: int = 0
    raw_bytes: int = 0  # payload bytes after decompression
    stored_bytes: int = 0  # payload bytes as stored (compressed or not), frame headers excluded
    uncompressed_frames: int = 0  # frames stored as plain msgpack (zstd would not shrink them)
    first_ns: int | None = None
    last_ns: int | None = None
    corrupt_frames: int = 0
    corrupt_bytes: int = 0
    torn_tail_bytes: int = 0
    index_complete: bool = True
    symlink: bool = False  # writers refuse a store holding one (wal.writer.recover)
    damage: list[tuple[int, str]] = field(default_factory=list)  # (offset, reason)

    @property
    def corrupt(self) -> bool:
        return self.corrupt_frames > 0 or self.symlink


def wal_directories(path: Path) -> list[tuple[str, Path]]:
    """(name, directory) for each WAL under ``path``: a store (``ticks/``, ``lob/``) or one WAL."""
    if not path.exists():
        raise NotAStoreError(f"{path} does not exist: give a store directory or a WAL directory")
    if path.is_file():
        raise NotAStoreError(
            f"{path} is a file: give the directory holding it ({path.parent}) or the store"
        )
    streams = [(name, path / name) for name in STORE_STREAMS if (path / name).is_dir()]
    if streams and any(list_segments(d) or any(d.glob("*.wal.damaged")) for _name, d in streams):
        return streams
    if streams:  # ticks/ and lob/ but no segment: nothing recorded yet, or all archived
        raise NotAStoreError(
            f"no WAL segments in {', '.join(str(d) for _n, d in streams)} yet: nothing to check; "
            "give a store the recorder has written to"
        )
    if list_segments(path):
        return [(path.name or str(path), path)]
    raise NotAStoreError(
        f"no WAL segments in {path}: give a store directory (holding ticks/ and lob/) "
        "or a directory of segment_*.wal files"
    )


def _note_times(report: SegmentCheck, mn: int, mx: int) -> None:
    if report.first_ns is None or mn < report.first_ns:
        report.first_ns = mn
    if report.last_ns is None or mx > report.last_ns:
        report.last_ns = mx


def check_segment(
    path: Path, *, is_last: bool, progress: Callable[[int], None] | None = None
) -> SegmentCheck:
    size = path.stat().st_size
    codec = "?"
    try:
        with open(path, "rb") as f:
            codec = CODEC_NAMES.get(parse_segment_header(f.read(SEGMENT_HEADER_SIZE)).codec, "?")
    except ValueError:
        pass  # the scan below reports it
    report = SegmentCheck(path, codec, size)
    report.index_complete = covered_end(load_index(path, size)) == size
    stats = ReadStats()
    with open(path, "rb") as f:
        _check_frames(path, f.fileno(), report, stats, is_last, progress)
    report.corrupt_frames = stats.corrupt_frames
    report.corrupt_bytes = stats.corrupt_bytes
    report.torn_tail_bytes = stats.torn_tail_bytes
    report.damage = [(off, reason) for _p, off, reason, _n in stats.damage]
    report.damage.sort()
    if path.is_symlink():
        report.symlink = True
        report.damage.insert(0, (0, symlink_segment_reason(path)))
    return report


def symlink_segment_reason(path: Path) -> str:
    return (
        f"the segment is a symbolic link to {os.readlink(path)}: writers refuse to open this WAL; "
        "replace the link with the file itself"
    )


def _check_frames(
    path: Path,
    fd: int,
    report: SegmentCheck,
    stats: ReadStats,
    is_last: bool,
    progress: Callable[[int], None] | None,
) -> None:
    done = 0
    for frame in _scan_segment(
        path,
        [(SEGMENT_HEADER_SIZE, None)],
        strict=False,
        is_last=is_last,
        stats=stats,
        start_ns=-(1 << 63),
        end_ns=1 << 63,
        dctx=zstandard.ZstdDecompressor(),
    ):
        try:
            with paused_gc():
                # only the count is kept: a batch still alive while the next one decodes slows
                # the scan down frame by frame (see WalReader.records)
                len(unpack_frame(frame, decode=True))
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            stats.skip(path, frame.offset, frame.length, f"records do not decode: {exc}")
            continue
        report.frames += 1
        report.records += frame.count
        report.raw_bytes += len(frame.payload)
        if frame.flags & FLAG_ZSTD:
            # the frame's stored length is in its header (the reader hands out the decompressed
            # payload); the ratio must compare payloads, not count the fixed 40-byte headers
            report.stored_bytes += FRAME_HEADER.unpack(
                os.pread(fd, FRAME_HEADER_SIZE, frame.offset)
            )[1]
        else:
            report.stored_bytes += len(frame.payload)
            report.uncompressed_frames += 1
        _note_times(report, frame.min_ns, frame.max_ns)
        if progress is not None:
            progress(stats.bytes_read - done)
            done = stats.bytes_read
    if progress is not None:
        progress(max(0, report.bytes - done))


def check_wal(directory: Path, progress: Callable[[int], None] | None = None) -> list[SegmentCheck]:
    segments = list_segments(directory)
    return [
        check_segment(path, is_last=i == len(segments) - 1, progress=progress)
        for i, (_n, path) in enumerate(segments)
    ]


def total_bytes(path: Path) -> int:
    return sum(
        os.path.getsize(p) for _name, d in wal_directories(path) for _n, p in list_segments(d)
    )


@dataclass(slots=True)
class WalStats:
    name: str
    directory: Path
    segments: int = 0
    frames: int = 0
    records: int = 0
    bytes: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    codecs: set[str] = field(default_factory=set)
    unindexed_bytes: int = 0  # bytes the indexes do not describe (newest segment being written)
    # segments that are symbolic links, with their targets: `wal check` reports each as damage
    symlinks: list[tuple[str, str]] = field(default_factory=list)


def wal_stats(name: str, directory: Path) -> WalStats:
    out = WalStats(name, directory)
    for _n, path in list_segments(directory):
        if path.is_symlink():
            out.symlinks.append((path.name, os.readlink(path)))
        size = path.stat().st_size
        out.segments += 1
        out.bytes += size
        try:
            with open(path, "rb") as f:
                codec = parse_segment_header(f.read(SEGMENT_HEADER_SIZE)).codec
            out.codecs.add(CODEC_NAMES.get(codec, "?"))
        except ValueError:
            out.codecs.add("?")
        entries = load_index(path, size)
        out.unindexed_bytes += max(0, size - covered_end(entries))
        for e in entries:
            out.frames += e.frames
            out.records += e.records
            if out.first_ns is None or e.min_ns < out.first_ns:
                out.first_ns = e.min_ns
            if out.last_ns is None or e.max_ns > out.last_ns:
                out.last_ns = e.max_ns
    return out

"""Helpers shared by the WAL tests: records, writing batches, frame offsets, byte surgery."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

from shriven.events import Record, Status
from shriven.sim.samples import sample_records
from shriven.wal import WalWriter, list_segments
from shriven.wal.format import FRAME_HEADER, FRAME_HEADER_SIZE, SEGMENT_HEADER_SIZE


def records(n: int, seed: int = 7) -> list[Record]:
    return list(sample_records(n, seed=seed))


def batches(recs: Sequence[Record], size: int) -> list[list[Record]]:
    return [list(recs[i : i + size]) for i in range(0, len(recs), size)]


def status(i: int, detail: str = "") -> Status:
    return Status(1_000 + i, i, "system", "gap", "BTCUSDT", detail)


def write(directory: Path, groups: Sequence[Sequence[Record]], **options: object) -> WalWriter:
    options.setdefault("fsync_policy", "never")
    with WalWriter(directory, **options) as w:  # type: ignore[arg-type]
        for g in groups:
            w.append(g)
    return w


def frame_offsets(segment: Path) -> list[tuple[int, int]]:
    """(offset, total length) of every frame in a healthy segment."""
    data = segment.read_bytes()
    out = []
    pos = SEGMENT_HEADER_SIZE
    while pos < len(data):
        plen = FRAME_HEADER.unpack_from(data, pos)[1]
        out.append((pos, FRAME_HEADER_SIZE + plen))
        pos += FRAME_HEADER_SIZE + plen
    return out


def segments(directory: Path) -> list[Path]:
    return [p for _n, p in list_segments(directory)]


def flatten(groups: Sequence[Sequence[Record]]) -> list[Record]:
    return list(itertools.chain.from_iterable(groups))


def flip_bit(path: Path, offset: int, bit: int = 0) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ (1 << bit)]))

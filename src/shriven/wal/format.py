"""The bytes of a WAL segment and its index (docs/wal-format.md is the prose version).

Everything is little-endian. A segment is a 32-byte header followed by frames; a frame is a 40-byte
header followed by its payload. The frame CRC (zlib's CRC-32, IEEE 802.3 polynomial) covers the
first 36 header bytes and the payload, so a flipped bit in the length, counts, times or flags is
caught as surely as one in the records.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path
from typing import Final, NamedTuple

FORMAT_VERSION: Final = 1

SEGMENT_MAGIC: Final = b"SHRVWAL\x00"
# magic, format version, codec, reserved u8, segment number, created ns, reserved u32, header CRC
SEGMENT_HEADER: Final = struct.Struct("<8sHBBIqI")
SEGMENT_HEADER_CRC: Final = struct.Struct("<I")
SEGMENT_HEADER_SIZE: Final = SEGMENT_HEADER.size + SEGMENT_HEADER_CRC.size  # 32

CODEC_NONE: Final = 0
CODEC_ZSTD: Final = 1
CODEC_NAMES: Final = {CODEC_NONE: "none", CODEC_ZSTD: "zstd"}

FRAME_MAGIC: Final = b"SHFR"
# magic, payload length, record count, raw (uncompressed) length, min recv_ns, max recv_ns, flags
FRAME_HEAD: Final = struct.Struct("<4sIIIqqB3x")
FRAME_CRC: Final = struct.Struct("<I")
FRAME_HEADER: Final = struct.Struct("<4sIIIqqB3xI")
FRAME_HEADER_SIZE: Final = FRAME_HEADER.size  # 40
FLAG_ZSTD: Final = 0x01
KNOWN_FLAGS: Final = FLAG_ZSTD
FRAME_RESERVED: Final = slice(33, 36)  # frame header bytes that must be zero
MAX_PAYLOAD: Final = 1 << 30  # a frame longer than this is treated as damage, not data

INDEX_MAGIC: Final = b"SHRVIDX\x00"
# magic, index version, reserved u16, segment number, segment created ns
INDEX_HEADER: Final = struct.Struct("<8sHxxIq")
# first frame offset, span in bytes, min recv_ns, max recv_ns, records, frames, CRC of the 40 before
INDEX_ENTRY_BODY: Final = struct.Struct("<QQqqII")
INDEX_ENTRY: Final = struct.Struct("<QQqqIII")
INDEX_VERSION: Final = 1

_SEGMENT_NAME: Final = re.compile(r"^segment_(\d{8,})\.wal$")


class SegmentHeader(NamedTuple):
    version: int
    codec: int
    number: int
    created_ns: int


class FrameHeader(NamedTuple):
    payload_len: int
    count: int
    raw_len: int
    min_ns: int
    max_ns: int
    flags: int
    crc: int


def segment_name(number: int) -> str:
    return f"segment_{number:08d}.wal"


def segment_number(path: Path) -> int | None:
    """The ``N`` of a ``segment_N.wal`` file name (None for any other name)."""
    m = _SEGMENT_NAME.match(path.name)
    return int(m.group(1)) if m else None


def index_path(segment: Path) -> Path:
    return segment.with_suffix(".idx")


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """Segment files in ``directory`` as (number, path), in write order."""
    found = []
    if not directory.is_dir():
        return found
    for entry in directory.iterdir():
        m = _SEGMENT_NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry))
    found.sort()
    return found


def pack_segment_header(number: int, codec: int, created_ns: int) -> bytes:
    head = SEGMENT_HEADER.pack(SEGMENT_MAGIC, FORMAT_VERSION, codec, 0, number, created_ns, 0)
    return head + SEGMENT_HEADER_CRC.pack(zlib.crc32(head))


def parse_segment_header(data: bytes, path: Path | None = None) -> SegmentHeader:
    """Raise ValueError saying what is wrong with a segment header; with ``path``, the header's
    segment number must also be the one in the file name."""
    if len(data) < SEGMENT_HEADER_SIZE:
        raise ValueError(f"segment header is {len(data)} bytes, expected {SEGMENT_HEADER_SIZE}")
    head = data[: SEGMENT_HEADER.size]
    magic, version, codec, reserved8, number, created_ns, reserved32 = SEGMENT_HEADER.unpack(head)
    if magic != SEGMENT_MAGIC:
        raise ValueError(f"bad segment magic {magic!r}")
    (crc,) = SEGMENT_HEADER_CRC.unpack_from(data, SEGMENT_HEADER.size)
    if crc != zlib.crc32(head):
        raise ValueError("segment header checksum mismatch")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"segment format version {version} is not one this shriven reads ({FORMAT_VERSION})"
        )
    if reserved8 or reserved32:
        raise ValueError("segment header reserved bytes are not zero")
    if path is not None:
        named = segment_number(path)
        if named is not None and named != number:
            raise ValueError(
                f"segment header says segment {number}, the file name says {named}: the file "
                f"was renamed or copied from elsewhere; rename it to {segment_name(number)} "
                "if it belongs here"
            )
    return SegmentHeader(version, codec, number, created_ns)


def frame_crc(head36: bytes | memoryview, payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(head36))

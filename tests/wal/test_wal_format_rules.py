"""Every rule docs/wal-format.md states about a checksummed frame, segment header and record is
enforced alike by the reader (strict: an error; tolerant: skipped and counted with all its bytes)
and by `wal check` (damage)."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import msgpack
import pytest
import zstandard
from walcases import segments, status, write

from shriven.errors import WalCorruptionError
from shriven.events import encode_batch
from shriven.wal import WalReader, read_records
from shriven.wal.check import check_wal
from shriven.wal.format import (
    FLAG_ZSTD,
    FRAME_HEAD,
    FRAME_MAGIC,
    SEGMENT_HEADER,
    SEGMENT_HEADER_CRC,
    SEGMENT_HEADER_SIZE,
)

GOOD = status(7, "a frame that breaks a rule")
STATUS_WIRE = [6, 1, 1_007, 7, "system", "gap", "BTCUSDT", "x"]


def frame(
    payload: bytes,
    *,
    count: int = 1,
    raw_len: int | None = None,
    flags: int = 0,
    reserved: bytes = b"\0\0\0",
) -> bytes:
    """A frame with a good checksum over whatever header fields it is given."""
    raw = len(payload) if raw_len is None else raw_len
    head = FRAME_HEAD.pack(FRAME_MAGIC, len(payload), count, raw, 1_007, 1_007, flags)
    head = head[:33] + reserved
    return head + zlib.crc32(payload, zlib.crc32(head)).to_bytes(4, "little") + payload


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=1, write_content_size=True).compress(data)


def store_with(tmp_path: Path, bad: bytes) -> Path:
    """A WAL whose first segment holds a good frame, ``bad``, a good frame; then a newer
    segment (so nothing here is the newest segment's tail)."""
    write(tmp_path, [[status(1)]])
    (segment,) = segments(tmp_path)
    with open(segment, "ab") as f:
        f.write(bad)
    write(tmp_path, [[status(2)]])
    return segment


def assert_enforced(tmp_path: Path, segment: Path, offset: int, nbytes: int, why: str) -> None:
    with pytest.raises(WalCorruptionError, match=why) as err:
        list(read_records(tmp_path))
    assert (err.value.path, err.value.offset) == (str(segment), offset)
    reader = WalReader(tmp_path, strict=False)
    assert list(reader.records()) == [status(1), status(2)]
    assert (reader.stats.corrupt_frames, reader.stats.corrupt_bytes) == (1, nbytes)
    assert reader.stats.damage[0][1] == offset
    reports = check_wal(tmp_path)
    assert [(r.corrupt_frames, r.corrupt_bytes) for r in reports] == [(1, nbytes), (0, 0)]
    assert reports[0].damage[0][0] == offset and why.split(".")[0] in reports[0].damage[0][1]


def bad_frame_cases() -> dict[str, tuple[bytes, str]]:
    one = encode_batch([GOOD])
    wire = msgpack.packb([STATUS_WIRE], use_bin_type=True)
    return {
        "raw_len larger than the decompressed size": (
            frame(zstd(one), raw_len=999, flags=FLAG_ZSTD),
            "decompresses to",
        ),
        "bytes after the zstd frame": (
            frame(zstd(one) + b"junk", raw_len=len(one), flags=FLAG_ZSTD),
            "unused data",
        ),
        "record count larger than the payload's": (frame(one, count=2), "frame says 2 records"),
        "record count smaller than the payload's": (
            frame(encode_batch([GOOD, GOOD]), count=1),
            "frame says 1 records",
        ),
        "an unknown flag bit": (frame(one, flags=0x04), "unknown frame flag bits 0x04"),
        "reserved frame bytes not zero": (frame(one, reserved=b"\0\1\0"), "reserved bytes"),
        "uncompressed raw_len not the payload length": (frame(one, raw_len=3), "raw_len 3"),
        "an unknown record layout version": (
            frame(msgpack.packb([[6, 2, *STATUS_WIRE[2:]]])),
            "layout version 2",
        ),
        "a record shorter than layout 1": (frame(msgpack.packb([STATUS_WIRE[:6]])), "requires 4"),
        "bin where a string belongs": (
            frame(msgpack.packb([[*STATUS_WIRE[:4], b"system", *STATUS_WIRE[5:]]])),
            "msgpack str",
        ),
        "nil where a string belongs": (
            frame(msgpack.packb([[*STATUS_WIRE[:7], None]])),
            "msgpack str",
        ),
        "msgpack after the batch": (frame(wire + b"\x01"), "extra data"),
    }


@pytest.mark.parametrize("case", list(bad_frame_cases()))
def test_checksummed_frame_breaking_a_format_rule_is_damage_of_all_its_bytes(tmp_path, case):
    bad, why = bad_frame_cases()[case]
    segment = store_with(tmp_path, bad)
    offset = segment.stat().st_size - len(bad)
    assert_enforced(tmp_path, segment, offset, len(bad), why)


def test_the_same_frames_written_right_read_back(tmp_path):
    one = encode_batch([GOOD])
    store_with(tmp_path, frame(zstd(one), raw_len=len(one), flags=FLAG_ZSTD) + frame(one))
    assert list(read_records(tmp_path)) == [status(1), GOOD, GOOD, status(2)]
    assert [r.corrupt_frames for r in check_wal(tmp_path)] == [0, 0]


def _rewrite_header(segment: Path, **fields: int) -> None:
    data = bytearray(segment.read_bytes())
    names = ("magic", "version", "codec", "reserved8", "number", "created_ns", "reserved32")
    values = dict(zip(names, SEGMENT_HEADER.unpack_from(data, 0), strict=True)) | fields
    head = SEGMENT_HEADER.pack(*values.values())
    data[:SEGMENT_HEADER_SIZE] = head + SEGMENT_HEADER_CRC.pack(zlib.crc32(head))
    segment.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"number": 5}, "header says segment 5, the file name says 0"),
        ({"reserved8": 1}, "reserved bytes are not zero"),
        ({"reserved32": 9}, "reserved bytes are not zero"),
        ({"version": 0}, "format version 0 is not one"),
        ({"version": 2}, "format version 2 is not one"),
    ],
)
def test_segment_header_breaking_a_rule_makes_the_segment_corrupt(tmp_path, fields, why):
    write(tmp_path, [[status(1)]])
    write(tmp_path, [[status(2)]])
    first = segments(tmp_path)[0]
    _rewrite_header(first, **fields)
    with pytest.raises(WalCorruptionError, match=why) as err:
        list(read_records(tmp_path))
    assert err.value.offset == 0
    reader = WalReader(tmp_path, strict=False)
    assert list(reader.records()) == [status(2)]
    assert reader.stats.corrupt_bytes == first.stat().st_size
    (report, _newer) = check_wal(tmp_path)
    assert report.corrupt and why in report.damage[0][1]


def test_a_renamed_segment_is_named_with_the_fix(tmp_path):
    write(tmp_path, [[status(1)]])
    (segment,) = segments(tmp_path)
    os.rename(segment, segment.with_name("segment_00000003.wal"))
    with pytest.raises(WalCorruptionError, match=r"rename it to segment_00000000\.wal"):
        list(read_records(tmp_path))


def test_header_fields_are_where_the_document_says(tmp_path):
    write(tmp_path, [[status(1)]])
    data = segments(tmp_path)[0].read_bytes()
    assert data[11] == 0 and data[24:28] == b"\0\0\0\0"
    assert struct.unpack_from("<I", data, 12)[0] == 0

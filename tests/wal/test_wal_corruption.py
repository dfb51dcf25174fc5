from __future__ import annotations

import zlib

import pytest
from walcases import flip_bit, frame_offsets, records, segments, status, write

from shriven.errors import WalCorruptionError
from shriven.wal import WalReader, read_records
from shriven.wal.format import FRAME_HEAD, FRAME_MAGIC


def _three_frames(tmp_path, compression):
    groups = [records(30, seed=1), [status(1, "the middle frame")], records(30, seed=2)]
    write(tmp_path, groups, compression=compression)
    (segment,) = segments(tmp_path)
    return groups, segment, segment.read_bytes(), frame_offsets(segment)[1]


@pytest.mark.parametrize("compression", [False, True])
def test_a_flipped_bit_anywhere_in_a_frame_is_detected(tmp_path, compression):
    groups, segment, pristine, (offset, length) = _three_frames(tmp_path, compression)
    for pos in range(offset, offset + length):
        segment.write_bytes(pristine)
        flip_bit(segment, pos, bit=pos % 8)
        with pytest.raises(WalCorruptionError) as err:
            list(read_records(tmp_path, strict=True))
        assert (err.value.path, err.value.offset) == (str(segment), offset), pos
        tolerant = WalReader(tmp_path, strict=False)
        assert list(tolerant.records()) == groups[0] + groups[2], pos
        assert tolerant.stats.corrupt_frames == 1
        assert tolerant.stats.damage[0][1] == offset


def test_strict_error_names_file_offset_and_what_to_do(tmp_path):
    _groups, segment, _data, (offset, _len) = _three_frames(tmp_path, True)
    flip_bit(segment, offset + 50)
    with pytest.raises(WalCorruptionError, match=rf"{segment}.*byte {offset}.*checksum.*wal check"):
        list(read_records(tmp_path))


def test_damaged_last_frame_of_a_sealed_segment_is_corruption(tmp_path):
    write(tmp_path, [[status(1)], [status(2)]])
    write(tmp_path, [[status(3)]])
    first = segments(tmp_path)[0]
    offset, length = frame_offsets(first)[-1]
    flip_bit(first, offset + length - 1)
    with pytest.raises(WalCorruptionError):
        list(read_records(tmp_path))
    assert list(read_records(tmp_path, strict=False)) == [status(1), status(3)]


def test_damaged_last_frame_of_the_newest_segment_is_a_torn_tail_and_never_yielded(tmp_path):
    write(tmp_path, [[status(1)], [status(2)]])
    (segment,) = segments(tmp_path)
    offset, length = frame_offsets(segment)[-1]
    flip_bit(segment, offset + length - 1)
    reader = WalReader(tmp_path, strict=True)
    assert list(reader.records()) == [status(1)]
    assert reader.stats.torn_tail_bytes == length


def test_segment_header_damage_is_reported_at_offset_zero(tmp_path):
    write(tmp_path, [[status(1)]])
    write(tmp_path, [[status(2)]])
    first = segments(tmp_path)[0]
    flip_bit(first, 9)
    with pytest.raises(WalCorruptionError) as err:
        list(read_records(tmp_path))
    assert err.value.offset == 0
    assert list(read_records(tmp_path, strict=False)) == [status(2)]


def test_frame_with_a_good_checksum_but_undecodable_payload_is_never_yielded(tmp_path):
    write(tmp_path, [[status(1)]])
    (segment,) = segments(tmp_path)
    payload = b"\x93\x01\x02"  # msgpack array of 3, truncated: not a batch of records
    head = FRAME_HEAD.pack(FRAME_MAGIC, len(payload), 1, len(payload), 5, 5, 0)
    frame = head + zlib.crc32(payload, zlib.crc32(head)).to_bytes(4, "little") + payload
    with open(segment, "ab") as f:
        f.write(frame)
    write(tmp_path, [[status(2)]])
    with pytest.raises(WalCorruptionError):
        list(read_records(tmp_path))
    reader = WalReader(tmp_path, strict=False)
    assert list(reader.records()) == [status(1), status(2)]
    assert reader.stats.corrupt_frames == 1

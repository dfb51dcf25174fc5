from __future__ import annotations

import shutil
import time

import pytest
from walcases import frame_offsets, records, segments, status, write

from shriven.errors import WalCorruptionError
from shriven.wal import WalReader, WalWriter, read_records


def test_torn_tail_at_every_byte_of_the_last_frame_keeps_exactly_the_complete_frames(tmp_path):
    groups = [records(200, seed=1)[:100], records(200, seed=1)[100:], [status(1, "last")]]
    src = tmp_path / "src"
    write(src, groups, compression=True)
    (segment,) = segments(src)
    data = segment.read_bytes()
    last_offset, last_len = frame_offsets(segment)[-1]
    assert last_offset + last_len == len(data) and last_len < 100
    kept = groups[0] + groups[1]
    for cut in range(last_offset, len(data)):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / segment.name).write_bytes(data[:cut])
        reader = WalReader(d, strict=True)  # a torn tail is not corruption
        assert list(reader.records()) == kept
        assert reader.stats.torn_tail_bytes == cut - last_offset
        with WalWriter(d, fsync_policy="never") as w:
            assert w.recovery.bytes_dropped == cut - last_offset
            w.append([status(2, "after")])
        assert (d / segment.name).stat().st_size == last_offset
        assert list(read_records(d)) == [*kept, status(2, "after")]
        shutil.rmtree(d)


def test_zero_filled_tail_after_a_power_loss_is_truncated(tmp_path):
    recs = records(50)
    write(tmp_path, [recs])
    (segment,) = segments(tmp_path)
    good = segment.stat().st_size
    with open(segment, "ab") as f:
        f.write(b"\0" * 4096)
    with WalWriter(tmp_path, fsync_policy="never") as w:
        assert w.recovery.bytes_dropped == 4096
    assert segment.stat().st_size == good
    assert list(read_records(tmp_path)) == recs


def test_segment_with_a_torn_header_is_removed(tmp_path):
    recs = records(50)
    write(tmp_path, [recs])
    (tmp_path / "segment_00000001.wal").write_bytes(b"SHRVW")
    with WalWriter(tmp_path, fsync_policy="never") as w:
        assert w.recovery.removed_empty
        w.append([status(1)])
    assert [p.name for p in segments(tmp_path)] == ["segment_00000000.wal", "segment_00000001.wal"]
    assert list(read_records(tmp_path)) == [*recs, status(1)]


def test_damage_in_the_middle_of_the_last_segment_is_not_truncated_away(tmp_path):
    groups = [[status(i)] for i in range(5)]
    write(tmp_path, groups)
    (segment,) = segments(tmp_path)
    size = segment.stat().st_size
    offset, _ = frame_offsets(segment)[2]
    with open(segment, "r+b") as f:
        f.seek(offset + 45)
        f.write(b"\xff")
    WalWriter(tmp_path, fsync_policy="never").close()
    assert segment.stat().st_size == size  # frames 3 and 4 survive for a tolerant reader
    with pytest.raises(WalCorruptionError) as err:
        list(read_records(tmp_path))
    assert err.value.offset == offset and err.value.path == str(segment)
    assert list(read_records(tmp_path, strict=False)) == [status(i) for i in (0, 1, 3, 4)]


def test_newest_segment_with_a_zeroed_header_and_no_frames_is_set_aside(tmp_path):
    recs = records(20)
    write(tmp_path, [recs])
    (tmp_path / "segment_00000001.wal").write_bytes(b"\0" * 4096)  # created, then power lost
    with WalWriter(tmp_path, fsync_policy="never") as w:
        assert w.recovery.bytes_dropped == 4096
        w.append([status(1)])
    assert (tmp_path / "segment_00000001.wal.damaged").stat().st_size == 4096
    assert list(read_records(tmp_path)) == [*recs, status(1)]


def test_interval_policy_syncs_in_the_background(tmp_path):
    with WalWriter(tmp_path, fsync_policy="interval", fsync_interval_ms=10) as w:
        w.append(records(10))
        deadline = time.monotonic() + 30
        while w.records_synced < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert w.records_synced == 10


def test_a_symlinked_segment_is_refused_by_recovery_and_its_target_left_alone(tmp_path):
    from shriven.errors import WalError

    wal = tmp_path / "wal"
    write(wal, [records(50)])
    (segment,) = segments(wal)
    elsewhere = tmp_path / "elsewhere.wal"
    data = segment.read_bytes() + b"torn tail bytes"  # recovery would truncate these
    elsewhere.write_bytes(data)
    segment.unlink()
    segment.symlink_to(elsewhere)
    with pytest.raises(WalError, match=rf"{segment.name} is a symbolic link to .*elsewhere\.wal"):
        WalWriter(wal, fsync_policy="never")
    assert elsewhere.read_bytes() == data
    assert segments(wal) == [segment]  # no new segment either

from __future__ import annotations

import pytest
from walcases import batches, records, segments, status, write

from shriven.errors import ConfigError
from shriven.wal import WalOptions, WalReader, WalWriter, load_index, read_records
from shriven.wal.format import SEGMENT_HEADER_SIZE


def _fixed_frames(n: int) -> list[list]:
    return [[status(i, "x" * 900)] for i in range(n)]  # every frame has the same size


def test_rotation_happens_exactly_at_the_size_boundary(tmp_path):
    probe = write(tmp_path / "probe", _fixed_frames(1), compression=False)
    frame = probe.bytes_written
    size = SEGMENT_HEADER_SIZE + 5 * frame
    assert size >= 4096
    write(tmp_path / "w", _fixed_frames(11), compression=False, segment_size=size)
    files = segments(tmp_path / "w")
    assert [p.stat().st_size for p in files] == [size, size, SEGMENT_HEADER_SIZE + frame]
    assert list(read_records(tmp_path / "w")) == [g[0] for g in _fixed_frames(11)]


def test_a_frame_larger_than_a_segment_gets_a_segment_of_its_own(tmp_path):
    big = records(400)
    write(tmp_path, [[status(1)], big, [status(2)]], compression=False, segment_size=4096)
    assert len(segments(tmp_path)) == 3
    assert list(read_records(tmp_path)) == [status(1), *big, status(2)]


def test_reading_across_many_segments_is_in_write_order(tmp_path):
    recs = records(6_000)
    write(tmp_path, batches(recs, 100), segment_size=64 * 1024, index_interval=4096)
    assert len(segments(tmp_path)) > 5
    back = list(read_records(tmp_path))
    assert back == recs
    assert [r.recv_ns for r in back] == sorted(r.recv_ns for r in back)


def _many_segments(tmp_path):
    recs = records(12_000)
    write(tmp_path, batches(recs, 50), segment_size=64 * 1024, index_interval=4096)
    return recs


def test_seek_by_time_returns_exactly_the_records_in_the_range(tmp_path):
    recs = _many_segments(tmp_path)
    for lo_i, hi_i in [(0, 10), (3_333, 4_444), (7_001, 7_002), (11_990, 12_000)]:
        lo, hi = recs[lo_i].recv_ns, recs[hi_i - 1].recv_ns + 1
        assert list(read_records(tmp_path, lo, hi)) == recs[lo_i:hi_i]
    assert list(read_records(tmp_path, recs[-1].recv_ns + 1)) == []


def test_seek_by_time_never_reads_segments_before_the_range(tmp_path):
    recs = _many_segments(tmp_path)
    files = segments(tmp_path)
    lo = recs[-500].recv_ns
    # Wreck every frame of all but the last two segments; their indexes stay. A reader that opened
    # them would fail its checksums, so a clean strict read proves it never touched them.
    for path in files[:-2]:
        size = path.stat().st_size
        with open(path, "r+b") as f:
            f.seek(SEGMENT_HEADER_SIZE)
            f.write(b"\xa5" * (size - SEGMENT_HEADER_SIZE))
    reader = WalReader(tmp_path, strict=True)
    assert list(reader.records(lo)) == recs[-500:]
    assert reader.stats.segments_opened <= 2
    total = sum(p.stat().st_size for p in files)
    assert reader.stats.bytes_read < total / 4


def test_a_missing_index_costs_time_not_records_and_is_rebuilt_on_open(tmp_path):
    recs = _many_segments(tmp_path)
    lo, hi = recs[5_000].recv_ns, recs[6_000].recv_ns
    for idx in tmp_path.glob("*.idx"):
        idx.unlink()
    assert list(read_records(tmp_path, lo, hi)) == recs[5_000:6_000]
    WalWriter(tmp_path, fsync_policy="never").close()
    for path in segments(tmp_path)[:-1]:
        entries = load_index(path)
        assert entries and entries[-1].end == path.stat().st_size
    reader = WalReader(tmp_path)
    assert list(reader.records(lo, hi)) == recs[5_000:6_000]
    assert reader.stats.segments_opened <= 3


def test_a_garbled_index_is_ignored(tmp_path):
    recs = _many_segments(tmp_path)
    for idx in tmp_path.glob("*.idx"):
        data = bytearray(idx.read_bytes())
        data[40] ^= 0xFF  # inside the first entry: its CRC no longer matches
        idx.write_bytes(bytes(data))
    lo, hi = recs[100].recv_ns, recs[200].recv_ns
    assert list(read_records(tmp_path, lo, hi)) == recs[100:200]


def test_bad_writer_options_are_one_line_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="fsync policy 'sometimes'"):
        WalWriter(tmp_path, fsync_policy="sometimes")
    with pytest.raises(ConfigError, match="segment size"):
        WalWriter(tmp_path, segment_size=10)
    with pytest.raises(ConfigError, match="segment size"):
        WalOptions(segment_size=10)


def test_caller_policy_syncs_only_when_asked_and_when_a_segment_closes(tmp_path):
    small, big = [status(1, "x" * 900)], [status(2, "y" * 4000)]
    options = WalOptions(segment_size=4096, compression=False, fsync_policy="caller")
    with WalWriter.open(tmp_path, options) as w:
        assert w._syncer is None  # no background thread: the caller times the fsyncs
        w.append(small)
        assert w.records_synced == 0
        w.sync()
        assert w.records_synced == 1
        w.append(big)  # does not fit: the first segment is closed, and fsynced
        w.append(small)  # nor this: the second one too
        assert w.segments_created == 3 and w.records_synced == 2
    assert list(read_records(tmp_path)) == [*small, *big, *small]

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from walcases import batches, flatten, records, segments, write

from shriven.events import decode_wire
from shriven.wal import WalReader, WalWriter, read_records
from test_events import any_record


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    groups=st.lists(st.lists(any_record, min_size=1, max_size=8), max_size=6),
    compression=st.booleans(),
)
def test_any_records_round_trip_through_the_wal(groups, compression):
    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp), groups, compression=compression, segment_size=4096)
        assert list(read_records(tmp)) == flatten(groups)


def test_realistic_records_round_trip_with_and_without_compression(tmp_path):
    recs = records(5_000)
    for compression in (False, True):
        d = tmp_path / str(compression)
        w = write(d, batches(recs, 250), compression=compression, segment_size=128 * 1024)
        assert w.records_written == len(recs) and w.frames_written == 20
        assert list(read_records(d)) == recs


def test_wire_fast_path_gives_the_same_records(tmp_path):
    recs = records(1_000)
    write(tmp_path, batches(recs, 100))
    assert [decode_wire(w) for w in WalReader(tmp_path).wire()] == recs


def test_compressed_frames_are_smaller_than_their_msgpack(tmp_path):
    w = write(tmp_path, batches(records(2_000), 500), compression=True)
    assert w.bytes_written < w.raw_bytes_written


def test_empty_append_writes_nothing(tmp_path):
    with WalWriter(tmp_path, fsync_policy="never") as w:
        assert w.append([]) == 0
        assert w.frames_written == 0


def test_each_writer_starts_a_new_segment_and_reading_spans_them_in_order(tmp_path):
    first, second = records(300, seed=1), records(300, seed=2)
    write(tmp_path, batches(first, 100))
    write(tmp_path, batches(second, 100))
    assert len(segments(tmp_path)) == 2
    assert list(read_records(tmp_path)) == first + second


def test_append_returns_bytes_on_disk_and_counts_add_up(tmp_path):
    recs = records(400)
    with WalWriter(tmp_path, fsync_policy="always") as w:
        sizes = [w.append(b) for b in batches(recs, 100)]
        assert w.records_synced == 400
    assert sum(sizes) == w.bytes_written == segments(tmp_path)[0].stat().st_size - 32

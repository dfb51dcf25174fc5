"""`shriven wal check` and `shriven wal stats` run as a user runs them, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from walcases import batches, flip_bit, frame_offsets, records, segments

from shriven.wal import StoreWriter, WalOptions


def shriven(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shriven", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=60,
    )


@pytest.fixture
def store(tmp_path):
    recs = records(3_000)
    with StoreWriter(tmp_path / "market", WalOptions(segment_size=64 * 1024)) as s:
        for b in batches(recs, 100):
            s.append_ticks(b)
        s.append_lob(recs[:3])
    return tmp_path / "market"


def test_check_on_a_good_store_prints_what_it_holds_and_exits_0(store):
    out = shriven("wal", "check", str(store))
    assert out.returncode == 0, out.stderr
    assert "ticks: " in out.stdout and "3000 records" in out.stdout
    assert "lob: 1 segments, 3 records" in out.stdout
    assert "codec=zstd" in out.stdout and "2026-01-01T" in out.stdout
    assert out.stdout.strip().endswith("result: ok")


def test_check_on_a_damaged_store_names_the_frame_and_exits_1(store):
    segment = segments(store / "ticks")[1]
    offset, _length = frame_offsets(segment)[1]
    flip_bit(segment, offset + 60)
    out = shriven("wal", "check", str(store))
    assert out.returncode == 1
    assert f"{segment.name}" in out.stdout and "CORRUPT" in out.stdout
    assert f"at byte {offset}: checksum mismatch" in out.stdout
    assert out.stdout.strip().endswith("result: CORRUPT")


def test_check_reports_a_torn_tail_without_failing(store):
    segment = segments(store / "ticks")[-1]
    with open(segment, "r+b") as f:
        f.truncate(segment.stat().st_size - 7)
    out = shriven("wal", "check", str(store / "ticks"))
    assert out.returncode == 0, out.stdout
    assert "TRUNCATED: torn tail of" in out.stdout


def test_stats_summarises_from_the_indexes(store):
    out = shriven("wal", "stats", str(store))
    assert out.returncode == 0, out.stderr
    assert "records     3000" in out.stdout and "records     3" in out.stdout
    assert "metadata.json" in out.stdout


def test_a_path_without_a_wal_is_a_one_line_error(tmp_path):
    out = shriven("wal", "check", str(tmp_path / "nowhere"))
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0 and "does not exist" in out.stderr


@pytest.mark.parametrize("command", ["check", "stats"])
def test_a_path_that_is_not_a_store_exits_2_not_the_damage_code(tmp_path, command):
    empty = tmp_path / "empty"
    empty.mkdir()
    started = tmp_path / "started"  # a data dir a recorder claimed before writing any segment
    started.mkdir()
    (started / ".shriven.lock").write_text("123\n")
    for path in (tmp_path / "nowhere", empty, started):
        out = shriven("wal", command, str(path))
        assert out.returncode == 2, (path, out.stderr)
        assert out.stderr.startswith("shriven: error: ") and out.stderr.count("\n") == 1


@pytest.mark.parametrize("command", ["check", "stats"])
def test_a_store_whose_wal_directories_hold_no_segment_exits_2_not_ok(store, command):
    # every segment archived from the front, or a start that failed before the first segment
    for directory in (store / "ticks", store / "lob"):
        for path in segments(directory):
            path.unlink()
        for index in directory.glob("*.idx"):
            index.unlink()
    out = shriven("wal", command, str(store))
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith("shriven: error: no WAL segments") and out.stderr.count("\n") == 1


def test_a_segment_file_instead_of_a_directory_says_which_directory_to_give(store):
    segment = segments(store / "ticks")[0]
    out = shriven("wal", "stats", str(segment))
    assert out.returncode == 2
    said = f"shriven: error: {segment} is a file: give the directory holding it ({store / 'ticks'})"
    assert out.stderr.startswith(said) and out.stderr.count("\n") == 1


def test_check_reports_the_payload_compression_ratio_and_frames_left_uncompressed(tmp_path):
    from shriven.wal import WalWriter
    from shriven.wal.check import check_segment

    with WalWriter(tmp_path / "one", fsync_policy="never") as w:
        w.append(records(1))  # zstd would make a one-record frame larger: stored as it is
    out = shriven("wal", "check", str(tmp_path / "one"))
    assert out.returncode == 0, out.stderr
    assert "codec=zstd (1.0x; 1 frame stored uncompressed)" in out.stdout

    with WalWriter(tmp_path / "many", fsync_policy="never") as w:
        w.append(records(500))
        w.append(records(1, seed=3))
    (segment,) = segments(tmp_path / "many")
    report = check_segment(segment, is_last=True)
    stored = [length - 40 for _offset, length in frame_offsets(segment)]
    assert report.stored_bytes == sum(stored) and report.uncompressed_frames == 1
    ratio = report.raw_bytes / report.stored_bytes
    assert ratio > 1.5  # 500 similar records compress well; frame headers are not counted
    out = shriven("wal", "check", str(tmp_path / "many"))
    assert f"codec=zstd ({ratio:.1f}x; 1 frame stored uncompressed)" in out.stdout


def test_check_mentions_a_segment_recovery_set_aside(tmp_path):
    from shriven.wal import WalWriter

    wal = tmp_path / "ticks"
    with WalWriter(wal, fsync_policy="never") as w:
        w.append(records(10))
    (wal / "segment_00000001.wal").write_bytes(b"\0" * 4096)  # created, then power lost
    WalWriter(wal, fsync_policy="never").close()  # recovery renames it out of the WAL
    out = shriven("wal", "check", str(wal))
    assert out.returncode == 0, out.stdout
    assert "segment_00000001.wal.damaged  set aside by recovery (4096 bytes" in out.stdout


def test_stats_shows_records_per_stream_from_metadata(store):
    from collections import Counter

    from shriven.events import stream_of

    out = shriven("wal", "stats", str(store))
    assert out.returncode == 0, out.stderr
    per_stream = Counter(stream_of(r) for r in records(3_000))
    assert set(per_stream) == {"kite", "binance", "system"}
    for stream, n in per_stream.items():
        assert f"    {stream:<9} {n:>12} records  2026-01-01T" in out.stdout
    out = shriven("wal", "stats", str(store / "ticks"))  # one WAL of the store
    assert f"    kite      {per_stream['kite']:>12} records" in out.stdout
    (store / "metadata.json").write_text("{not json")  # stats never depend on it
    out = shriven("wal", "stats", str(store))
    assert (
        out.returncode == 0 and "per stream" not in out.stdout and "records     3000" in out.stdout
    )


def test_check_and_stats_show_times_in_the_market_zone_with_the_offset(store):
    env = {k: v for k, v in os.environ.items() if k != "SHRIVEN_MARKET_TZ"}
    for command in ("check", "stats"):
        ist = subprocess.run(
            [sys.executable, "-m", "shriven", "wal", command, str(store)],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        assert ist.returncode == 0, ist.stderr
        assert ist.stdout.startswith("# times in Asia/Kolkata (UTC+05:30)\n")
        assert "2026-01-01T05:30:00" in ist.stdout and "+05:30" in ist.stdout
        utc = shriven("wal", command, str(store), "--tz", "UTC")
        assert utc.stdout.startswith("# times in UTC (UTC+00:00)\n")
        assert "2026-01-01T00:00:00.000000000Z" in utc.stdout


@pytest.fixture
def linked_segment(store, tmp_path):
    """The store's first ticks segment moved out and replaced by a symbolic link to it."""
    segment = segments(store / "ticks")[0]
    moved = tmp_path / "moved.wal"
    segment.rename(moved)
    segment.symlink_to(moved)
    return segment, moved


def test_check_reports_a_segment_that_is_a_symbolic_link(store, linked_segment):
    _segment, moved = linked_segment
    out = shriven("wal", "check", str(store))
    assert out.returncode == 1
    assert f"at byte 0: the segment is a symbolic link to {moved}" in out.stdout
    assert out.stdout.strip().endswith("result: CORRUPT")


def test_stats_names_each_segment_that_is_a_symbolic_link_and_its_target(store, linked_segment):
    segment, moved = linked_segment
    out = shriven("wal", "stats", str(store))
    assert out.returncode == 0, out.stderr
    links = [line for line in out.stdout.splitlines() if line.startswith("  symlink ")]
    assert links == [
        f"  symlink     {segment.name} -> {moved} (writers refuse to open this WAL; replace "
        "the link with the file itself; `shriven wal check` reports it as damage)"
    ]


def test_stats_per_stream_counts_only_the_segments_left_after_front_deletion(store):
    from collections import Counter

    from shriven.events import stream_of
    from shriven.wal import read_records

    first = segments(store / "ticks")[0]
    first.unlink()  # operations.md: old segments are deleted or archived from the front
    first.with_suffix(".idx").unlink()
    left = Counter(stream_of(r) for r in read_records(store / "ticks"))
    assert 0 < sum(left.values()) < 3_000
    out = shriven("wal", "stats", str(store))
    assert out.returncode == 0, out.stderr
    for stream, n in left.items():
        assert f"    {stream:<9} {n:>12} records  2026-01-01T" in out.stdout, out.stdout

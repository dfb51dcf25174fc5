"""shriven wal prune: sealed segments go from the front, never the newest; metadata.json is kept
right; a running recorder (holding the store lock) keeps its open segment and metadata.json."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from shriven.app.retention import prune_store, retention_loop
from shriven.pipeline.lock import DataDirLock
from shriven.sizes import parse_size
from shriven.wal import list_segments, read_records
from shriven.wal.prune import plan_prune, store_bytes

from .cli import shriven
from .store import DAY, T0, day_store


def _names(store, wal):
    return [p.name for _n, p in list_segments(store / wal)]


@pytest.fixture
def _cli(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SHRIVEN_CONFIG_FILE", os.devnull)
    return lambda *args: shriven(capsys, "wal", "prune", *args)


def test_keep_days_removes_older_sealed_segments_and_rewrites_metadata(tmp_path):
    store = day_store(tmp_path / "s", 5)
    now = T0 + 4 * DAY
    result = prune_store(store, keep_days=2, now_ns=now)
    # days 0 and 1 end more than 2 days before `now`
    assert [s.path.name for s in result.segments if s.wal == "ticks"] == [
        "segment_00000000.wal", "segment_00000001.wal"
    ]  # fmt: skip
    assert _names(store, "ticks") == [f"segment_0000000{n}.wal" for n in (2, 3, 4)]
    assert not (store / "ticks" / "segment_00000001.idx").exists()
    meta = json.loads((store / "metadata.json").read_text())
    ticks = meta["streams"]["ticks"]
    assert [s["file"] for s in ticks["segments"]] == _names(store, "ticks")
    assert ticks["records"] == 3 * 200
    assert ticks["by_stream"]["system"]["records"] == 3 * 200
    assert ticks["first_ns"] == T0 + 2 * DAY
    assert (store / "metadata.json").is_file()
    records = list(read_records(store / "ticks"))
    assert len(records) == 600 and records[0].recv_ns == T0 + 2 * DAY


def test_the_newest_segment_is_never_removed(tmp_path):
    store = day_store(tmp_path / "s", 3)
    result = prune_store(store, keep_days=0, now_ns=T0 + 100 * DAY)
    assert len(result.segments) == 4  # two per WAL; the newest of each stays
    assert _names(store, "ticks") == ["segment_00000002.wal"]
    assert _names(store, "lob") == ["segment_00000002.wal"]


def test_keep_size_removes_from_the_front_until_the_store_fits(tmp_path):
    store = day_store(tmp_path / "s", 5)
    total = store_bytes(store)
    plan = plan_prune(store, keep_bytes=total // 2)
    assert plan and store_bytes(store) - sum(s.bytes for s in plan) <= total // 2
    prune_store(store, keep_bytes=total // 2)
    assert store_bytes(store) <= total // 2
    assert _names(store, "ticks")[-1] == "segment_00000004.wal"
    firsts = [n for n, _p in list_segments(store / "ticks")]
    assert firsts == list(range(firsts[0], 5))  # one contiguous stretch


def test_dry_run_lists_and_removes_nothing(tmp_path, _cli):
    store = day_store(tmp_path / "s", 3)
    before = sorted(p.name for p in (store / "ticks").iterdir())
    meta = (store / "metadata.json").read_bytes()
    done = _cli(store, "--keep-days", "0", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "would remove ticks/segment_00000000.wal" in done.stdout
    assert "would remove 4 segments" in done.stdout
    assert sorted(p.name for p in (store / "ticks").iterdir()) == before
    assert (store / "metadata.json").read_bytes() == meta


def test_with_a_recorder_holding_the_lock_metadata_is_left_to_it(tmp_path):
    store = day_store(tmp_path / "s", 3)
    meta = (store / "metadata.json").read_bytes()
    lock = DataDirLock(store)
    lock.acquire()  # what a running recorder holds
    try:
        result = prune_store(store, keep_days=0, now_ns=T0 + 100 * DAY)
    finally:
        lock.release()
    assert result.recorder_running
    assert _names(store, "ticks") == ["segment_00000002.wal"]
    assert (store / "metadata.json").read_bytes() == meta


def test_bad_requests_are_one_line(tmp_path, _cli):
    store = day_store(tmp_path / "s", 2)
    done = _cli(store)
    assert done.returncode == 2 and "give --keep-days N, --keep-size SIZE" in done.stderr
    done = _cli(store, "--keep-size", "lots")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "shriven: error: bad --keep-size 'lots': give a size such as 50GB, 500MiB or 1000000"
    )
    done = _cli(tmp_path / "nothing", "--keep-days", "1")
    assert done.returncode == 2 and "is not a store" in done.stderr


def test_sizes():
    assert parse_size("200GB") == 200 * 10**9
    assert parse_size("1.5 GiB") == 3 << 29


async def test_the_retention_job_inside_run_prunes_and_keeps_going(tmp_path):
    store = day_store(tmp_path / "s", 3)
    task = asyncio.create_task(retention_loop(store, 0.0, None, every_s=0.05))
    try:
        for _ in range(100):
            if _names(store, "ticks") == ["segment_00000002.wal"]:
                break
            await asyncio.sleep(0.02)
        assert _names(store, "ticks") == ["segment_00000002.wal"]
        assert not task.done()  # it keeps checking
    finally:
        task.cancel()

"""The recorder's store writes each tick segment's book index when rotation seals it, in a
child process, without blocking appends; a stale or missing sidecar is still ignored by reads
and rewritten when the segment is handed over again; a damaged segment is counted, not fatal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.replay.synth import generate

from shriven.replay.columns import load_columns, sidecar_path
from shriven.replay.indexer import SidecarIndexer
from shriven.replay.reconstruct import book_at
from shriven.replay.store import StoreReader
from shriven.wal import StoreWriter, WalOptions, list_segments


@pytest.fixture()
def indexer():
    ix = SidecarIndexer(timeout_s=60)
    yield ix
    ix.close()


def _record(data_dir: Path, indexer: SidecarIndexer) -> list:
    records = generate(seed=4, seconds=90)
    options = WalOptions(segment_size=64 * 1024, fsync_policy="never")
    with StoreWriter(data_dir, options, on_ticks_sealed=indexer.submit) as store:
        for i in range(0, len(records), 64):
            store.append_ticks(records[i : i + 64])
    return records


def _same_book(data_dir: Path, at_ns: int) -> None:
    fast = book_at(StoreReader(data_dir), "binance:BTCUSDT", at_ns)
    slow = book_at(StoreReader(data_dir), "binance:BTCUSDT", at_ns, columns=False)
    assert fast.book.levels() == slow.book.levels() and fast.changes == slow.changes


def test_each_segment_rotation_seals_gets_its_sidecar(tmp_path: Path, indexer) -> None:
    records = _record(tmp_path, indexer)
    assert indexer.wait_idle(120)
    segments = [path for _n, path in list_segments(tmp_path / "ticks")]
    assert len(segments) > 2
    sealed, newest = segments[:-1], segments[-1]
    assert indexer.counts.written == len(sealed) and indexer.counts.failed == 0
    assert all(load_columns(s) is not None for s in sealed)
    assert not sidecar_path(newest).exists()  # still open when the writer closed
    _same_book(tmp_path, records[len(records) * 2 // 3].recv_ns)


def test_a_stale_or_missing_sidecar_is_ignored_and_rewritten(tmp_path: Path, indexer) -> None:
    records = _record(tmp_path, indexer)
    assert indexer.wait_idle(120)
    first, second, third = [path for _n, path in list_segments(tmp_path / "ticks")][:3]
    sidecar_path(first).write_bytes(sidecar_path(third).read_bytes())  # made for another one
    sidecar_path(second).unlink()
    assert load_columns(first) is None and load_columns(second) is None
    _same_book(tmp_path, records[len(records) // 2].recv_ns)
    os.truncate(sidecar_path(first), 10)  # and now a torn sidecar file
    before = indexer.counts.written
    indexer.submit(first)
    indexer.submit(second)
    indexer.submit(second)  # already valid by then
    assert indexer.wait_idle(120)
    assert indexer.counts.written == before + 2 and indexer.counts.valid == 1
    assert load_columns(first) is not None and load_columns(second) is not None


def test_a_damaged_segment_is_counted_and_the_indexer_goes_on(tmp_path: Path, indexer) -> None:
    _record(tmp_path, indexer)
    assert indexer.wait_idle(120)
    first, second = [path for _n, path in list_segments(tmp_path / "ticks")][:2]
    sidecar_path(first).unlink()
    sidecar_path(second).unlink()
    data = bytearray(first.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte inside a frame: its checksum fails
    first.write_bytes(bytes(data))
    failed = indexer.counts.failed
    indexer.submit(first)
    indexer.submit(second)
    assert indexer.wait_idle(120)
    assert indexer.counts.failed == failed + 1
    assert not sidecar_path(first).exists() and load_columns(second) is not None


def test_a_full_backlog_drops_the_segment_without_blocking(tmp_path: Path) -> None:
    ix = SidecarIndexer(backlog=1, timeout_s=60)
    try:
        for i in range(20):  # nothing there to index: each child fails fast, after the backlog
            ix.submit(tmp_path / f"segment_{i}.wal")
        assert ix.counts.dropped > 0
        assert ix.wait_idle(120)
        assert ix.counts.failed + ix.counts.dropped == 20
    finally:
        ix.close()

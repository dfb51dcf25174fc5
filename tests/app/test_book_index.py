"""The recorder's store hands sealed tick segments to the book indexer: those rotation seals,
and at the next start the one the previous run's close sealed."""

from __future__ import annotations

from pathlib import Path

from tests.replay.synth import generate

from shriven.app.book_index import indexed_store
from shriven.replay.columns import load_columns
from shriven.replay.indexer import SidecarIndexer
from shriven.wal import WalOptions, list_segments


def test_the_previous_runs_last_segment_is_indexed_at_the_next_start(tmp_path: Path) -> None:
    records = generate(seed=5, seconds=10)
    options = WalOptions(segment_size=1 << 30, fsync_policy="never")  # no rotation at all
    indexer = SidecarIndexer(timeout_s=60)
    try:
        open_store = indexed_store(tmp_path, options, indexer)
        with open_store() as store:
            store.append_ticks(records)
        [(_n, first)] = list_segments(tmp_path / "ticks")
        assert indexer.wait_idle(60) and load_columns(first) is None  # closed, not rotated
        with open_store() as store:  # the next run
            assert indexer.wait_idle(120)
            assert load_columns(first) is not None and indexer.counts.written == 1
        with open_store():  # the run after: the (empty) second one; the first is not redone
            assert indexer.wait_idle(120) and indexer.counts.written == 2
    finally:
        indexer.close()

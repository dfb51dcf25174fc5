"""The store's own small files (metadata.json, segment indexes) are written like every other file
that must be whole or absent: through shriven.files, so a failed write leaves the old file and
no temporary file behind, and readers other than the recorder's user may read them."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from shriven.sim.samples import sample_records
from shriven.wal import METADATA_FILE, StoreWriter, WalOptions, load_index
from shriven.wal.index import index_path, write_index
from shriven.wal.store import write_json_atomically


def test_a_metadata_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / METADATA_FILE
    write_json_atomically(path, {"format": 1})
    with pytest.raises(TypeError):
        write_json_atomically(path, {"format": object()})  # not JSON: fails before the rename
    assert json.loads(path.read_text()) == {"format": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == [METADATA_FILE]


def test_store_files_are_readable_by_others_and_leave_no_temporaries(tmp_path: Path) -> None:
    with StoreWriter(tmp_path, WalOptions(fsync_policy="never", segment_size=64 * 1024)) as store:
        for _ in range(20):
            store.append_ticks(list(sample_records(200)))
    indexes = sorted((tmp_path / "ticks").glob("*.idx"))
    assert len(indexes) >= 2  # rotation wrote sealed indexes
    for path in [tmp_path / METADATA_FILE, *indexes]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_an_index_rewrite_replaces_the_whole_index(tmp_path: Path) -> None:
    with StoreWriter(tmp_path, WalOptions(fsync_policy="never")) as store:
        store.append_ticks(list(sample_records(500)))
    segment = sorted((tmp_path / "ticks").glob("segment_*.wal"))[0]
    entries = load_index(segment)
    assert entries
    write_index(segment, 0, 1, entries[:1])
    assert load_index(segment) == entries[:1]
    assert [p.name for p in index_path(segment).parent.iterdir() if p.name.endswith(".tmp")] == []

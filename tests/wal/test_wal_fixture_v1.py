"""A store written before the format-contract changes (tests/fixtures/wal) stays readable."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from shriven.events import Record
from shriven.wal import StoreWriter, read_records
from shriven.wal.check import check_wal


@pytest.fixture(scope="module")
def wal_fixture(fixtures_dir: Path) -> Path:
    return fixtures_dir / "wal"


def _as_json(record: Record) -> dict[str, object]:
    return json.loads(json.dumps({"type": type(record).__name__, **dataclasses.asdict(record)}))


def _defaults(record: Record) -> dict[str, object]:
    return {
        f.name: f.default
        for f in dataclasses.fields(record)
        if f.default is not dataclasses.MISSING
    }


@pytest.mark.parametrize("wal", ["ticks", "lob"])
def test_old_store_reads_back_every_record_with_its_values(wal_fixture: Path, wal: str) -> None:
    expected = json.loads((wal_fixture / "expected_v1.json").read_text())[wal]
    got = list(read_records(wal_fixture / "store_v1" / wal))
    assert len(got) == len(expected)
    for record, want in zip(got, expected, strict=True):
        have = _as_json(record)
        assert {k: have[k] for k in want} == want
        added = set(have) - set(want)
        # a field added after v1 reads as its default in records written before it
        assert {k: have[k] for k in added} == {k: _defaults(record)[k] for k in added}


def test_old_store_checks_clean_and_takes_new_appends(wal_fixture: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(wal_fixture / "store_v1", store)
    for wal in ("ticks", "lob"):
        reports = check_wal(store / wal)
        assert [r.corrupt_frames for r in reports] == [0]
        assert sum(r.records for r in reports) > 0
    old = list(read_records(store / "ticks"))
    with StoreWriter(store) as s:
        s.append_ticks(old[:2])
    assert list(read_records(store / "ticks")) == old + old[:2]

"""Records appended in their wire form (what the bus sink receives) make the frame that
appending the records makes: the same bytes, read back as the same records."""

from __future__ import annotations

from pathlib import Path

import pytest
from walcases import records, status

from shriven.events import encode_record, stream_of
from shriven.wal import StoreWriter, WalOptions, WalReader, WalWriter
from shriven.wal.store import store_stream_counts


@pytest.mark.parametrize(
    "n", [1, 15, 16, 3_000, 65_536]
)  # msgpack's array headers change at 16, 65536
def test_a_frame_of_encoded_records_is_the_frame_of_the_records(tmp_path: Path, n: int) -> None:
    recs = records(n) if n <= 3_000 else [status(i) for i in range(n)]
    for name, encoded in (("records", False), ("encoded", True)):
        with WalWriter(tmp_path / name, fsync_policy="never") as w:
            if encoded:
                times = [r.recv_ns for r in recs]
                w.append_encoded([encode_record(r) for r in recs], min(times), max(times))
            else:
                w.append(recs)
    a = list(WalReader(tmp_path / "records").frames())
    b = list(WalReader(tmp_path / "encoded").frames())
    assert [f.payload for f in b] == [f.payload for f in a]
    assert [(f.count, f.min_ns, f.max_ns, f.flags) for f in b] == [
        (f.count, f.min_ns, f.max_ns, f.flags) for f in a
    ]
    assert list(WalReader(tmp_path / "encoded").records()) == recs


def test_a_store_counts_encoded_records_per_stream_as_it_counts_records(tmp_path: Path) -> None:
    recs = records(500)
    with StoreWriter(tmp_path / "a", WalOptions(fsync_policy="never")) as store:
        store.append_ticks(recs)
    with StoreWriter(tmp_path / "b", WalOptions(fsync_policy="never")) as store:
        store.append_encoded(
            "ticks",
            [encode_record(r) for r in recs],
            [stream_of(r) for r in recs],
            [r.recv_ns for r in recs],
        )
    assert store_stream_counts(tmp_path / "b") == store_stream_counts(tmp_path / "a")

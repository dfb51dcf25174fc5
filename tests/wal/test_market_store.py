from __future__ import annotations

import json

from walcases import batches, records

from shriven.clock import iso_time
from shriven.events import BookSnapshot, stream_of
from shriven.wal import StoreWriter, WalOptions, read_records


def _book(i: int) -> BookSnapshot:
    return BookSnapshot(2_000 + i, i, "binance", "BTCUSDT", 10 + i, ((1.5, 2.0),), ((1.6, 1.0),))


def test_store_writes_ticks_and_lob_and_describes_them_in_metadata(tmp_path):
    recs = records(2_000)
    cfg = WalOptions(segment_size=64 * 1024, fsync_policy="never")
    with StoreWriter(tmp_path, cfg) as store:
        for b in batches(recs, 100):
            store.append_ticks(b)
        store.append_lob([_book(1), _book(2)])
    assert list(read_records(tmp_path / "ticks")) == recs
    assert list(read_records(tmp_path / "lob")) == [_book(1), _book(2)]
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["format_version"] == 1
    ticks, lob = meta["streams"]["ticks"], meta["streams"]["lob"]
    assert ticks["records"] == 2_000 and len(ticks["segments"]) > 1
    assert (ticks["first_ns"], ticks["last_ns"]) == (recs[0].recv_ns, recs[-1].recv_ns)
    assert sum(s["records"] for s in ticks["segments"]) == 2_000
    assert (lob["records"], lob["first_ns"], lob["last_ns"]) == (2, 2_001, 2_002)
    assert ticks["codec"] == "zstd"
    assert not list(tmp_path.glob("*.tmp"))


def test_metadata_is_current_while_the_store_is_open(tmp_path):
    with StoreWriter(tmp_path, WalOptions(fsync_policy="never")) as store:
        store.append_ticks(records(10))
        store.write_metadata()
        meta = json.loads((tmp_path / "metadata.json").read_text())
        assert meta["streams"]["ticks"]["records"] == 10


def test_reopening_a_store_keeps_counting(tmp_path):
    cfg = WalOptions(compression=False, fsync_policy="never")
    with StoreWriter(tmp_path, cfg) as store:
        store.append_ticks(records(10, seed=1))
    with StoreWriter(tmp_path, cfg) as store:
        store.append_ticks(records(5, seed=2))
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["streams"]["ticks"]["records"] == 15
    assert meta["streams"]["ticks"]["codec"] == "none"
    assert len(meta["streams"]["ticks"]["segments"]) == 2


def _truth(recs):
    out = {}
    for r in recs:
        s = stream_of(r)
        n, first, last = out.get(s, (0, r.recv_ns, r.recv_ns))
        out[s] = (n + 1, min(first, r.recv_ns), max(last, r.recv_ns))
    return out


def _by_stream(wal):
    return {k: (v["records"], v["first_ns"], v["last_ns"]) for k, v in wal["by_stream"].items()}


def test_metadata_counts_records_and_first_last_time_per_stream(tmp_path):
    recs = records(2_000)
    cfg = WalOptions(segment_size=64 * 1024, fsync_policy="never")
    with StoreWriter(tmp_path, cfg) as store:
        for b in batches(recs, 100):
            store.append_ticks(b)
        store.append_lob([_book(1), _book(2)])
    meta = json.loads((tmp_path / "metadata.json").read_text())
    ticks = meta["streams"]["ticks"]
    assert set(_by_stream(ticks)) == {"kite", "binance", "system"}
    assert _by_stream(ticks) == _truth(recs)
    assert _by_stream(meta["streams"]["lob"]) == {"binance": (2, 2_001, 2_002)}
    # each segment says what it holds, and the segments add up to the total
    assert len(ticks["segments"]) > 1
    assert (
        sum(s["by_stream"]["kite"]["records"] for s in ticks["segments"]) == _truth(recs)["kite"][0]
    )
    assert ticks["by_stream"]["kite"]["first"] == iso_time(_truth(recs)["kite"][1])
    assert ticks["first"].startswith("2026-01-01T") and ticks["first"].endswith("Z")


def test_per_stream_counts_survive_reopening_and_a_crash(tmp_path):
    cfg = WalOptions(segment_size=64 * 1024, fsync_policy="never")
    first, second, third = records(700, seed=1), records(600, seed=2), records(500, seed=3)
    with StoreWriter(tmp_path, cfg) as store:
        for b in batches(first, 100):
            store.append_ticks(b)
    with StoreWriter(tmp_path, cfg) as store:  # counts of earlier segments carried over
        for b in batches(second, 100):
            store.append_ticks(b)
    crashed = StoreWriter(tmp_path, cfg)
    for b in batches(third, 100):
        crashed.append_ticks(b)
    crashed.ticks.close()  # the process dies: metadata.json still says what the store held
    crashed.lob.close()  # when this run opened it; the next open counts what it cannot trust
    with StoreWriter(tmp_path, cfg):
        pass
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert _by_stream(meta["streams"]["ticks"]) == _truth(first + second + third)
    assert meta["streams"]["ticks"]["records"] == 1_800


def test_segments_archived_while_the_store_is_open_leave_the_totals(tmp_path):
    cfg = WalOptions(segment_size=64 * 1024, fsync_policy="never")
    recs = records(2_000)
    with StoreWriter(tmp_path / "store", cfg) as store:
        for b in batches(recs, 100):
            store.append_ticks(b)
        first = sorted((tmp_path / "store" / "ticks").glob("segment_*.wal"))[0]
        (tmp_path / "archive").mkdir()
        first.rename(tmp_path / "archive" / first.name)  # operations.md: archive from the front
        first.with_suffix(".idx").unlink()
    archived = len(list(read_records(tmp_path / "archive")))
    kept = recs[archived:]  # segments hold the records in write order
    assert 0 < archived < len(recs)
    meta = json.loads((tmp_path / "store" / "metadata.json").read_text())
    assert meta["streams"]["ticks"]["records"] == len(kept)
    assert _by_stream(meta["streams"]["ticks"]) == _truth(kept)

from __future__ import annotations

import json

from walcases import batches, records

from shriven.config import PipelineConfig
from shriven.events import BookSnapshot
from shriven.wal import MarketStore, read_records


def _book(i: int) -> BookSnapshot:
    return BookSnapshot(2_000 + i, i, "binance", "BTCUSDT", 10 + i, ((1.5, 2.0),), ((1.6, 1.0),))


def test_store_writes_ticks_and_lob_and_describes_them_in_metadata(tmp_path):
    recs = records(2_000)
    cfg = PipelineConfig(wal_segment_size=64 * 1024, fsync_policy="never")
    with MarketStore(tmp_path, cfg) as store:
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
    with MarketStore(tmp_path, PipelineConfig(fsync_policy="never")) as store:
        store.append_ticks(records(10))
        store.write_metadata()
        meta = json.loads((tmp_path / "metadata.json").read_text())
        assert meta["streams"]["ticks"]["records"] == 10


def test_reopening_a_store_keeps_counting(tmp_path):
    cfg = PipelineConfig(enable_compression=False, fsync_policy="never")
    with MarketStore(tmp_path, cfg) as store:
        store.append_ticks(records(10, seed=1))
    with MarketStore(tmp_path, cfg) as store:
        store.append_ticks(records(5, seed=2))
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["streams"]["ticks"]["records"] == 15
    assert meta["streams"]["ticks"]["codec"] == "none"
    assert len(meta["streams"]["ticks"]["segments"]) == 2

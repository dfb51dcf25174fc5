"""The Binance book at an instant read from the columnar index equals the record-by-record
rebuild, on recorded-style stores with restarts, gaps, stale and refused diffs, and many
segments; sidecars are ignored when stale and never written by a read."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
from tests.replay.synth import NS, T0, generate, record_store

from shriven.events import BinanceDepth, Record
from shriven.replay.columns import (
    BookIndex,
    build_columns,
    load_columns,
    sidecar_path,
    write_sidecars,
)
from shriven.replay.reconstruct import book_at
from shriven.replay.store import StoreReader
from shriven.wal import list_segments


def _perturbed(records: list[Record], seed: int) -> list[Record]:
    """Records as a faulty feed or an old recorder leaves them: some diffs lost (gaps with no
    marker), repeated (stale), moved back in receive time, or with a price the keeper refuses."""
    rng = random.Random(seed)
    out: list[Record] = []
    for r in records:
        if type(r) is BinanceDepth:
            roll = rng.random()
            if roll < 0.01:
                continue
            if roll < 0.02:
                out.append(r)
            elif roll < 0.025:
                r = dataclasses.replace(r, recv_ns=r.recv_ns - 2 * NS)
            elif roll < 0.03 and r.bids:
                r = dataclasses.replace(r, bids=(("abc", "1.0"), *r.bids[1:]))
        out.append(r)
    return out


def _instants(records: list[Record], n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    lo, hi = records[0].recv_ns, records[-1].recv_ns
    return sorted([rng.randint(lo - NS, hi + NS) for _ in range(n)] + [hi + 10 * NS])


def _assert_same(data_dir: Path, instants: list[int]) -> int:
    compared = 0
    for symbol in ("BTCUSDT", "ETHUSDT"):
        key = f"binance:{symbol}"
        for at in instants:
            fast = book_at(StoreReader(data_dir), key, at)
            slow = book_at(StoreReader(data_dir), key, at, columns=False)
            assert fast.book.levels() == slow.book.levels(), (key, at)
            assert fast.book.update_id == slow.book.update_id, (key, at)
            assert (fast.valid, fast.changes, fast.snapshot) == (
                slow.valid,
                slow.changes,
                slow.snapshot,
            ), (key, at)
            compared += 1
    return compared


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_indexed_book_at_equals_record_by_record_rebuild(tmp_path: Path, seed: int) -> None:
    records = _perturbed(
        generate(seed=seed, seconds=240, restart_at_s=150, gap_at_s=70 + seed), seed
    )
    record_store(tmp_path, records, interval_s=30, segment_size=48 * 1024)
    ticks = tmp_path / "ticks"
    assert len(list_segments(ticks)) > 3
    written, valid = write_sidecars(ticks)
    assert (written, valid) == (len(list_segments(ticks)) - 1, 0)
    assert BookIndex(ticks).complete
    assert _assert_same(tmp_path, _instants(records, 25, seed)) == 52


def test_rebuilt_from_the_start_without_snapshots(tmp_path: Path) -> None:
    records = _perturbed(generate(seed=9, seconds=120, gap_at_s=40), 9)
    record_store(tmp_path, records, interval_s=10_000, segment_size=32 * 1024)
    write_sidecars(tmp_path / "ticks")
    _assert_same(tmp_path, _instants(records, 15, 9))


def test_a_stale_sidecar_is_ignored_and_a_read_writes_none(tmp_path: Path) -> None:
    records = generate(seed=4, seconds=60)
    record_store(tmp_path, records, segment_size=32 * 1024)
    ticks = tmp_path / "ticks"
    first = list_segments(ticks)[0][1]
    book_at(StoreReader(tmp_path), "binance:BTCUSDT", T0 + 30 * NS)
    assert not sidecar_path(first).exists()  # replay reads; only `replay index` writes
    assert not BookIndex(ticks).complete
    write_sidecars(ticks)
    assert load_columns(first) is not None
    with open(first, "ab") as f:
        f.write(b"\0")  # the segment changed (as recovery truncating it would): stale
    assert load_columns(first) is None
    assert not BookIndex(ticks).complete


def test_sidecar_round_trips_the_columns(tmp_path: Path) -> None:
    record_store(tmp_path, generate(seed=5, seconds=60), segment_size=32 * 1024)
    path = list_segments(tmp_path / "ticks")[0][1]
    built = build_columns(path)
    write_sidecars(tmp_path / "ticks")
    loaded = load_columns(path)
    assert loaded is not None and loaded.starts == built.starts
    btc, got = built.symbols["BTCUSDT"], loaded.symbols["BTCUSDT"]
    assert got.events == btc.events and got.snap_ask == btc.snap_ask
    assert list(got.bid_px) == list(btc.bid_px) and list(got.last) == list(btc.last)

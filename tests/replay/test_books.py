"""Books rebuilt from snapshots plus recorded changes equal the books the daemon kept live, and
verify-books proves a store complete (or shows where it is not)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from shriven.events import BinanceDepth, KiteTick, Record
from shriven.replay import iter_lob_states, reconstruct_lob_from_ticks
from shriven.replay.books import is_restart, verify_books
from shriven.replay.reconstruct import book_at
from shriven.replay.store import StoreReader
from shriven.replay.times import format_ns, load_zone

from .synth import (
    BANK_FUT,
    NIFTY_CE,
    NIFTY_FUT,
    NS,
    T0,
    Session,
    generate,
    live_book_at,
    record_store,
    reference_book_at,
    store_without,
)

KEYS = (
    "binance:BTCUSDT",
    "binance:ETHUSDT",
    f"kite:{NIFTY_FUT}",
    f"kite:{NIFTY_CE}",
    f"kite:{BANK_FUT}",
)


@pytest.fixture(scope="module")
def eventful(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Record], Session]:
    """Six minutes across segment rotations, with a Binance gap and resync at 130 s and a daemon
    restart at 250 s."""
    data_dir = tmp_path_factory.mktemp("eventful")
    records = generate(seed=3, seconds=360, rate_hz=30, gap_at_s=130, restart_at_s=250)
    session = record_store(data_dir, records)
    return data_dir, records, session


def _verify(data_dir: Path):  # type: ignore[no-untyped-def]
    store = StoreReader(data_dir)
    return verify_books(store.ticks.records(), store.snapshots(), store.restart_times())


def test_verify_books_passes_on_a_complete_store(
    eventful: tuple[Path, list[Record], Session],
) -> None:
    data_dir, _records, session = eventful
    assert len(list((data_dir / "ticks").glob("*.wal"))) >= 4
    report = _verify(data_dir)
    assert report.ok, report.differences[:3]
    assert report.snapshots == len(session.snapshots)
    assert report.books == set(KEYS)
    assert report.restarts == 2  # the first start and the restart
    assert report.pairs >= 3 * len(KEYS)
    assert report.run_starts >= len(KEYS)  # first snapshots after the start, rebuilt from it
    assert report.seq_gaps == {}


@pytest.mark.parametrize("kind", [BinanceDepth, KiteTick])
def test_verify_books_fails_when_a_record_is_missing(
    eventful: tuple[Path, list[Record], Session], tmp_path: Path, kind: type
) -> None:
    _data_dir, records, session = eventful
    # the last change of a book before its second snapshot: the one the snapshot ends with
    snap = [s for s in session.snapshots if s.instrument in ("BTCUSDT", str(NIFTY_FUT))][2]
    index = max(
        i
        for i, r in enumerate(records)
        if type(r) is kind
        and r.recv_ns <= snap.recv_ns
        and (r.mode == "full" if kind is KiteTick else r.symbol == "BTCUSDT")
        and (r.instrument_token == NIFTY_FUT if kind is KiteTick else True)
    )
    report = _verify(store_without(tmp_path, records, index))
    assert not report.ok
    assert report.differences[0].later.recv_ns >= records[index].recv_ns
    assert report.seq_gaps == {"kite" if kind is KiteTick else "binance": 1}


def test_book_at_random_instants_equals_the_live_book(
    eventful: tuple[Path, list[Record], Session],
) -> None:
    data_dir, records, session = eventful
    rng = random.Random(5)
    store = StoreReader(data_dir)
    end = records[-1].recv_ns
    instants = [rng.randrange(T0, end) for _ in range(12)]
    for s in session.snapshots[::9]:  # right at, just before and just after snapshot times
        instants += [s.recv_ns - 1, s.recv_ns, s.recv_ns + 1]
    checked = independent = 0
    for at in instants:
        key = rng.choice(KEYS)
        got = book_at(store, key, at)
        live, valid = live_book_at(records, key, at)
        if live is None:
            assert not got.book.bids and not got.book.asks
            continue
        assert got.book == live, (key, format_ns(at, load_zone("UTC")))
        assert got.valid == valid
        assert got.book.update_id == live.update_id  # type: ignore[attr-defined]
        # and against an oracle that is not a BookKeeper
        ref, ref_valid = reference_book_at(records, key, at)
        assert got.valid == ref_valid, key
        if ref_valid:
            assert got.book.levels() == ref, key
            independent += 1
        checked += 1
    assert checked > 20 and independent > 10


def test_reconstruct_api_with_iso_times(eventful: tuple[Path, list[Record], Session]) -> None:
    data_dir, records, _session = eventful
    zone = load_zone("Asia/Kolkata")
    start, end = T0 + 100 * NS, T0 + 200 * NS  # across the gap and resync
    book = reconstruct_lob_from_ticks(
        "BTCUSDT",
        format_ns(start, zone),
        format_ns(end, zone)[:-6],  # no offset: read in the market zone
        data_dir=data_dir,
        market_tz="Asia/Kolkata",
    )
    live, _ = live_book_at(records, "binance:BTCUSDT", end - 1)
    assert book == live
    states = list(
        iter_lob_states("BTCUSDT", start, end, data_dir=data_dir, market_tz="Asia/Kolkata")
    )
    assert states and all(start <= s.recv_ns < end for s in states)
    assert not all(s.valid for s in states)  # the gap shows
    assert states[-1].book == live
    kite = reconstruct_lob_from_ticks(
        NIFTY_FUT, start, end, data_dir=data_dir, market_tz="Asia/Kolkata"
    )
    assert kite == live_book_at(records, f"kite:{NIFTY_FUT}", end - 1)[0]


def test_before_the_first_snapshot_the_book_is_rebuilt_from_the_start(
    eventful: tuple[Path, list[Record], Session],
) -> None:
    data_dir, records, session = eventful
    at = session.snapshots[0].recv_ns - 1
    got = book_at(StoreReader(data_dir), "binance:ETHUSDT", at)
    assert got.snapshot is None
    assert got.book == live_book_at(records, "binance:ETHUSDT", at)[0]


def test_book_at_a_late_instant_reads_only_the_end_of_the_store(
    eventful: tuple[Path, list[Record], Session],
) -> None:
    data_dir, records, _session = eventful
    segments = list((data_dir / "ticks").glob("*.wal"))
    store = StoreReader(data_dir)
    at = records[-1].recv_ns
    got = book_at(store, "binance:BTCUSDT", at)
    assert got.snapshot is not None and got.snapshot.recv_ns > at - 61 * NS
    assert got.book == live_book_at(records, "binance:BTCUSDT", at)[0]
    assert store.ticks.stats.segments_opened < len(segments) / 2


def test_changes_are_counted_from_the_snapshot_in_its_own_daemon_run(
    eventful: tuple[Path, list[Record], Session],
) -> None:
    data_dir, records, session = eventful
    restart = max(r.recv_ns for r in records if is_restart(r))
    key = f"kite:{NIFTY_FUT}"
    snap = next(
        s for s in session.snapshots if s.recv_ns > restart and s.instrument == str(NIFTY_FUT)
    )
    at = snap.recv_ns + 5 * NS
    got = book_at(StoreReader(data_dir), key, at)
    assert got.snapshot == snap
    want = sum(
        1
        for r in records
        if type(r) is KiteTick
        and r.instrument_token == NIFTY_FUT
        and r.mode == "full"
        and restart < r.recv_ns <= at
        and r.seq > snap.update_id
    )
    assert got.changes == want > 0


def test_frames_without_the_instrument_are_not_unpacked(tmp_path: Path) -> None:
    records = generate(seed=9, seconds=120, rate_hz=20)
    record_store(tmp_path, records, batch=4)  # small frames, as a busy daemon's 5 ms batches
    store = StoreReader(tmp_path)
    key = f"kite:{BANK_FUT}"
    at = records[-1].recv_ns
    got = book_at(store, key, at)
    assert got.book == live_book_at(records, key, at)[0]
    assert store.frames_unpacked > 0
    assert store.frames_skipped > (store.frames_skipped + store.frames_unpacked) / 3

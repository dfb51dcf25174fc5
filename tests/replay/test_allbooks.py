"""Every book rebuilt from columns equals what a BookKeeper fed every record holds, book by
book, with the same counts of changes, on stores with restarts, gaps and odd records."""

from __future__ import annotations

from pathlib import Path

import pytest

from shriven.book import BookKeeper
from shriven.events import BinanceDepth, BinanceDepthSnapshot, KiteTick, Record
from shriven.replay.allbooks import every_book
from shriven.replay.store import StoreReader
from shriven.sim.samples import sample_records

from .synth import generate, record_store


def keeper_books(records: list[Record]) -> tuple[dict, int, int]:
    keeper = BookKeeper()
    for r in records:
        keeper.apply(r)
    st = keeper.stats
    books = {k: b.levels() for k, b in keeper.valid_books().items()}
    return books, st.applied + st.snapshots + st.kite_depth, st.levels


def check(tmp_path: Path, records: list[Record]) -> list[str]:
    record_store(tmp_path, records)
    got = every_book(StoreReader(tmp_path))
    books, changes, levels = keeper_books(records)
    assert got.books.keys() == books.keys()
    for key, want in books.items():
        assert got.books[key] == want, key
    assert (got.changes, got.levels, got.records) == (changes, levels, len(records))
    return got.by_keeper


def test_a_clean_session_is_rebuilt_from_columns_alone(tmp_path: Path) -> None:
    assert check(tmp_path, generate(seed=21, seconds=120)) == []


def test_a_restart_with_a_new_snapshot_stays_columnar(tmp_path: Path) -> None:
    assert check(tmp_path, generate(seed=22, seconds=120, restart_at_s=50)) == []


def test_a_gap_sends_that_book_alone_to_the_keeper(tmp_path: Path) -> None:
    assert check(tmp_path, generate(seed=23, seconds=120, gap_at_s=60)) == ["binance:BTCUSDT"]


def test_sim_samples_every_book(tmp_path: Path) -> None:
    check(tmp_path, list(sample_records(6000, seed=4)))


def _diff(t: int, first: int, last: int, price: str, qty: str) -> BinanceDepth:
    return BinanceDepth(t, t, "BTCUSDT", first, last, t, ((price, qty),), (("70000", "1"),))


@pytest.mark.parametrize(
    "case",
    ["buffered", "stale_after", "hole_after", "stale_snapshot", "odd_level", "no_snapshot"],
)
def test_sync_edge_cases_equal_the_keeper(tmp_path: Path, case: str) -> None:
    snap = BinanceDepthSnapshot(50, 50, "BTCUSDT", 104, (("60000", "1"), ("59999", "0")), ())
    recs: list[Record] = [_diff(i, 100 + i, 100 + i, f"6000{i}", "2") for i in range(1, 8)]
    if case == "buffered":  # diffs before the snapshot: 105..107 are released by it
        recs.insert(5, snap)
    elif case == "stale_after":  # the snapshot first, then its backlog, then continuation
        recs.insert(0, snap)
    elif case == "hole_after":
        recs.insert(0, snap)
        recs.append(_diff(60, 110, 111, "60009", "0"))
    elif case == "stale_snapshot":  # older than every buffered diff: not usable
        recs.append(BinanceDepthSnapshot(70, 70, "BTCUSDT", 90, (("1", "1"),), ()))
    elif case == "odd_level":
        recs.insert(0, snap)
        recs.append(_diff(61, 108, 108, "6e4", "3"))
    else:
        pass
    recs.append(KiteTick(80, 1, (5 << 8) | 2, "full", 10, bids=((100, 5, 1), (100, 7, 1))))
    check(tmp_path, recs)

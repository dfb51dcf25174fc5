from __future__ import annotations

import pytest

from shriven.book import BookKeeper, OrderBook
from shriven.book.depth_sync import MAX_STALE_RUN
from shriven.events import (
    BinanceDepth,
    BinanceDepthSnapshot,
    BinanceTrade,
    BookSnapshot,
    KiteTick,
    SeqCounter,
    Status,
    StatusKind,
)

SYM = "BTCUSDT"
KEY = "binance:BTCUSDT"


def diff(first: int, last: int, bids=(), asks=()) -> BinanceDepth:
    return BinanceDepth(0, 0, SYM, first, last, 0, tuple(bids), tuple(asks))


def snap(last: int, bids=(("100.0", "1.0"),), asks=(("101.0", "1.0"),)) -> BinanceDepthSnapshot:
    return BinanceDepthSnapshot(0, 0, SYM, last, tuple(bids), tuple(asks))


def test_diffs_before_the_snapshot_are_buffered_then_stale_ones_dropped() -> None:
    k = BookKeeper()
    k.apply(diff(5, 8, bids=[("99.0", "1")]))  # u <= 10: stale
    k.apply(diff(9, 12, bids=[("98.0", "2")]))  # straddles 11: first applied
    k.apply(diff(13, 13, asks=[("101.0", "0")]))
    assert not k.is_valid(KEY)
    k.apply(snap(10))
    book = k.book(KEY)
    assert book is not None and k.is_valid(KEY)
    assert book.levels() == ([(100.0, 1.0), (98.0, 2.0)], [])
    assert book.update_id == 13
    assert k.stats.applied == 2 and k.stats.stale == 1 and k.stats.snapshots == 1


def test_first_diff_after_snapshot_may_straddle_then_must_continue() -> None:
    k = BookKeeper()
    k.apply(snap(10))
    k.apply(diff(3, 10))  # u <= last: ignored
    k.apply(diff(8, 15, bids=[("99.5", "3")]))  # U <= 11 <= u
    k.apply(diff(16, 20, bids=[("99.5", "4")]))
    assert k.book(KEY).best_bid() == (100.0, 1.0)
    assert k.book(KEY).bids[99.5] == 4.0
    assert k.stats.gaps == 0 and k.stats.stale == 1


def test_a_hole_in_the_sequence_invalidates_the_book_until_the_next_snapshot() -> None:
    k = BookKeeper()
    k.apply(snap(10))
    k.apply(diff(11, 12))
    k.apply(diff(14, 15, bids=[("50", "1")]))  # 13 missing
    assert k.stats.gaps == 1 and not k.is_valid(KEY) and k.out_of_sync() == [KEY]
    k.apply(diff(16, 17, bids=[("51", "1")]))  # buffered, not applied
    assert k.snapshots(1) == []
    k.apply(snap(15, bids=[("100.0", "2.0")]))  # drops 14-15, applies 16-17
    book = k.book(KEY)
    assert k.is_valid(KEY) and book.update_id == 17
    assert book.levels() == ([(100.0, 2.0), (51.0, 1.0)], [(101.0, 1.0)])


def test_overlapping_diff_after_the_first_is_a_gap() -> None:
    k = BookKeeper()
    k.apply(snap(10))
    k.apply(diff(11, 15))
    k.apply(diff(14, 18))  # strict rule: U must be 16
    assert k.stats.gaps == 1


def test_snapshot_older_than_the_buffered_diffs_is_not_used() -> None:
    k = BookKeeper()
    k.apply(diff(20, 25))
    k.apply(snap(10))  # 11..19 would be missing
    assert k.stats.stale_snapshots == 1 and not k.is_valid(KEY)
    k.apply(snap(22))
    assert k.is_valid(KEY) and k.book(KEY).update_id == 25


def test_gap_status_invalidates_a_live_book_and_is_idempotent() -> None:
    k = BookKeeper()
    k.apply(snap(10))
    k.apply(Status(0, 0, "binance", StatusKind.GAP, SYM, "disconnected"))
    assert not k.is_valid(KEY) and k.stats.gaps == 1
    k.apply(diff(30, 31))
    k.apply(Status(0, 0, "binance", StatusKind.GAP, SYM, "sequence"))
    assert k.stats.gaps == 1  # already waiting: buffer kept
    k.apply(snap(30))
    assert k.is_valid(KEY) and k.book(KEY).update_id == 31


def test_crossed_and_locked_books_are_counted_not_fixed() -> None:
    k = BookKeeper()
    k.apply(snap(10))
    k.apply(diff(11, 11, bids=[("101.0", "1")]))
    assert k.stats.locked == 1 and KEY in k.crossed_now
    k.apply(diff(12, 12, bids=[("102.0", "1")]))
    assert k.stats.crossed == 1
    assert k.book(KEY).best_bid() == (102.0, 1.0)
    k.apply(diff(13, 13, bids=[("102.0", "0"), ("101.0", "0")]))
    assert KEY not in k.crossed_now


def test_kite_full_tick_replaces_the_book_with_scaled_prices() -> None:
    k = BookKeeper()
    nfo = (12345 << 8) | 2  # NFO: paise
    cds = (777 << 8) | 3  # CDS: 10^7
    depth_b = ((2_250_050, 75, 3), (2_250_000, 150, 2), (0, 0, 0), (0, 0, 0), (0, 0, 0))
    depth_a = ((2_250_100, 50, 1), (2_250_200, 25, 1), (0, 0, 0), (0, 0, 0), (0, 0, 0))
    k.apply(KiteTick(0, 7, nfo, "full", 2_250_050, bids=depth_b, asks=depth_a))
    k.apply(KiteTick(0, 8, cds, "full", 832_500_000, bids=((832_500_000, 1, 1),), asks=()))
    k.apply(KiteTick(0, 9, nfo, "quote", 2_250_000))  # no depth: book unchanged
    book = k.book(f"kite:{nfo}")
    assert book.levels() == (
        [(22500.5, 75.0), (22500.0, 150.0)],
        [(22501.0, 50.0), (22502.0, 25.0)],
    )
    assert book.update_id == 7
    assert k.book(f"kite:{cds}").best_bid() == (83.25, 1.0)
    k.apply(KiteTick(0, 10, nfo, "full", 1, bids=((2_250_000, 10, 1),), asks=()))
    assert k.book(f"kite:{nfo}").levels() == ([(22500.0, 10.0)], [])


def test_index_full_ticks_make_no_book() -> None:
    k = BookKeeper()
    nifty = 256265  # segment 9: indices
    k.apply(KiteTick(0, 1, nifty, "full", 2_500_000, exchange_timestamp=1_700_000_000))
    assert k.book(f"kite:{nifty}") is None
    assert k.snapshots(1, SeqCounter()) == []


def test_snapshots_hold_every_level_of_every_valid_book() -> None:
    k = BookKeeper()
    k.apply(snap(10, bids=[("100", "1"), ("99", "2")], asks=[("101", "3")]))
    k.apply(BinanceDepth(0, 0, "ETHUSDT", 1, 2, 0, (("5", "1"),), ()))  # no snapshot yet
    k.apply(BinanceTrade(0, 0, SYM, 1, "100", "1", 0, 0, True))
    seq = SeqCounter(100)
    (s,) = k.snapshots(123, seq)
    assert (s.recv_ns, s.seq, s.venue, s.instrument, s.update_id) == (123, 101, "binance", SYM, 10)
    assert s.bids == ((100.0, 1.0), (99.0, 2.0)) and s.asks == ((101.0, 3.0),)
    (top,) = k.snapshots(124, depth=1)
    assert top.bids == ((100.0, 1.0),)


def test_two_keepers_fed_the_same_records_hold_equal_books() -> None:
    records = [diff(9, 12, bids=[("98", "2")]), snap(10), diff(13, 14, asks=[("102", "5")])]
    a, b = BookKeeper(), BookKeeper()
    a.apply_all(records)
    for r in records:
        b.apply(r)
    expected = OrderBook([(100.0, 1.0), (98.0, 2.0)], [(101.0, 1.0), (102.0, 5.0)])
    assert a.book(KEY) == b.book(KEY) == expected


def test_restore_from_a_saved_snapshot_continues_like_the_live_keeper() -> None:
    records = [snap(10), diff(11, 12, bids=[("99", "5")]), diff(13, 15, asks=[("102", "1")])]
    live = BookKeeper()
    live.apply_all(records[:2])
    (saved,) = live.snapshots(1)
    live.apply(records[2])
    replay = BookKeeper()
    replay.restore(saved)
    assert replay.is_valid(KEY) and replay.book(KEY).update_id == 12
    replay.apply(records[2])
    assert replay.book(KEY) == live.book(KEY) and replay.book(KEY).update_id == 15
    replay.apply(diff(17, 18))  # 16 missing
    assert not replay.is_valid(KEY)
    kite = BookSnapshot(5, 1, "kite", "256265", 9, ((100.5, 3.0),), ((101.0, 2.0),))
    replay.restore(kite)
    assert replay.book("kite:256265").levels() == ([(100.5, 3.0)], [(101.0, 2.0)])


# A diff or snapshot whose ids ran ahead of the stream (yet within MAX_ID_JUMP) left the book
# valid and frozen: every genuine diff after it was "stale", for hours at BTCUSDT's id rate.
@pytest.mark.parametrize("how", ["diff", "snapshot"])
def test_a_book_whose_id_ran_ahead_of_the_stream_resyncs_instead_of_freezing(how: str) -> None:
    k = BookKeeper()
    k.apply(snap(10))
    k.apply(diff(11, 11))
    ahead = 5 * 10**8
    k.apply(diff(12, ahead) if how == "diff" else snap(ahead))
    assert k.is_valid(KEY)  # nothing yet tells it from a genuine message
    run = MAX_STALE_RUN if how == "diff" else MAX_STALE_RUN * 100  # a snapshot may lead
    for u in range(12, 12 + run):  # the genuine stream goes on
        k.apply(diff(u, u))
    assert not k.is_valid(KEY) and k.stats.gaps == 1
    k.apply(snap(12 + run))
    k.apply(diff(13 + run, 13 + run, bids=[("99.0", "1")]))
    assert k.is_valid(KEY) and k.book(KEY).bids[99.0] == 1.0


def test_a_stream_lagging_behind_its_snapshot_is_not_a_gap() -> None:
    k = BookKeeper()
    lag = MAX_STALE_RUN * 100 - 1
    k.apply(snap(20_000))
    for u in range(20_001 - lag, 20_001):  # read late, older than the snapshot
        k.apply(diff(u, u))
    k.apply(diff(20_001, 20_001))
    assert k.is_valid(KEY) and k.stats.gaps == 0 and k.stats.stale == lag

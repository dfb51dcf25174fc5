from __future__ import annotations

import pytest

from shriven.book.depth_sync import APPLY, BUFFERED, GAP, STALE, DepthSync


def test_official_algorithm_buffer_snapshot_first_event_then_strict_sequence() -> None:
    s: DepthSync[str] = DepthSync()
    assert s.on_diff(1, 3, "a") == BUFFERED
    assert s.on_diff(4, 6, "b") == BUFFERED
    assert s.on_diff(7, 9, "c") == BUFFERED
    r = s.on_snapshot(4)
    assert r.usable and r.dropped == 1 and r.apply == ["b", "c"] and not r.gap
    assert s.live and s.last_update_id == 9
    assert s.on_diff(5, 9, "old") == STALE
    assert s.on_diff(10, 10, "d") == APPLY
    assert s.on_diff(12, 13, "e") == GAP
    assert not s.live and s.first_buffered_u == 12


def test_snapshot_older_than_buffer_asks_for_another() -> None:
    s: DepthSync[str] = DepthSync()
    s.on_diff(10, 12, "a")
    r = s.on_snapshot(8)
    assert not r.usable and not s.live and s.first_buffered_u == 10
    r = s.on_snapshot(9)  # 9 + 1 == U: usable
    assert r.usable and r.apply == ["a"]


def test_snapshot_newer_than_every_buffered_event_waits_for_straddling_event() -> None:
    s: DepthSync[str] = DepthSync()
    s.on_diff(1, 2, "a")
    r = s.on_snapshot(50)
    assert r.usable and r.apply == [] and r.dropped == 1
    assert s.on_diff(45, 50, "x") == STALE
    assert s.on_diff(48, 55, "y") == APPLY
    assert s.on_diff(57, 58, "z") == GAP


def test_a_hole_inside_the_buffer_applies_the_prefix_and_keeps_the_rest() -> None:
    s: DepthSync[str] = DepthSync()
    for f, u, x in [(1, 2, "a"), (3, 4, "b"), (6, 7, "c"), (8, 9, "d")]:
        s.on_diff(f, u, x)
    r = s.on_snapshot(2)
    assert r.usable and r.apply == ["b"] and r.gap
    assert not s.live and [x for _, _, x in s.buffer] == ["c", "d"]


def test_invalidate_only_resets_a_live_machine() -> None:
    s: DepthSync[str] = DepthSync()
    s.on_diff(1, 2, "a")
    assert not s.invalidate() and len(s.buffer) == 1
    s.on_snapshot(1)
    assert s.invalidate() and not s.live and not s.buffer


def test_buffer_is_bounded() -> None:
    s: DepthSync[int] = DepthSync(max_buffer=3)
    for i in range(5):
        s.on_diff(i, i, i)
    assert [x for _, _, x in s.buffer] == [2, 3, 4] and s.buffer_dropped == 2


@pytest.mark.parametrize(
    ("first", "last"),
    [
        (11, 2**62),  # in sequence, but would freeze the book at an id no diff ever reaches
        (11, 11 + 10**9 + 1),  # spans more ids than any diff can
        (15, 12),  # last id below the first
        (2**62, 2**62),  # implausibly far ahead
    ],
)
def test_impossible_ids_are_a_gap_not_a_frozen_book(first: int, last: int) -> None:
    s: DepthSync[str] = DepthSync()
    s.on_snapshot(10)
    assert s.on_diff(first, last, "bad") == GAP
    assert not s.live and not s.buffer  # the nonsense is not kept to spoil the next snapshot
    r = s.on_snapshot(20)
    assert r.usable
    assert s.on_diff(21, 22, "next") == APPLY and s.last_update_id == 22


def test_a_snapshot_with_an_absurd_id_does_not_freeze_the_book() -> None:
    s: DepthSync[str] = DepthSync()
    s.on_snapshot(2**62)
    assert s.on_diff(100, 105, "genuine") == GAP  # not "stale" forever


def test_an_absurd_id_at_the_head_of_the_buffer_does_not_make_every_snapshot_stale() -> None:
    s: DepthSync[str] = DepthSync()
    s.on_diff(2**62, 2**62, "absurd")
    s.on_diff(11, 12, "genuine")
    r = s.on_snapshot(11)
    assert r.usable and r.apply == ["genuine"]

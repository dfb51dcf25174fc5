"""The sink's memory of what it holds: exact across reordering, bounded across gaps."""

from __future__ import annotations

from shriven.bus.sink import HOLE_WINDOW, SeqSet


def test_a_seq_is_new_once() -> None:
    s = SeqSet()
    assert [s.add(q) for q in (1, 2, 2, 3, 1)] == [True, True, False, True, False]


def test_a_retried_record_arriving_after_later_ones_is_kept_once() -> None:
    s = SeqSet()
    assert s.add(1) and s.add(3) and s.add(4)
    assert s.add(2)  # the nak'd one, stored late
    assert not s.add(2)
    assert not s.add(3)


def test_holes_are_remembered_only_within_the_window() -> None:
    s = SeqSet()
    s.add(1)
    s.add(3 * HOLE_WINDOW)
    assert len(s.holes) <= HOLE_WINDOW
    assert s.add(3 * HOLE_WINDOW - 1)
    assert not s.add(2)  # far below the window: counted as held

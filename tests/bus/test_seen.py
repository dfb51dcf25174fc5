"""The sink's memory of what it holds: exact across reordering, bounded across gaps."""

from __future__ import annotations

import msgpack

from shriven.bus.sink import HOLE_WINDOW, Seen, SeqSet
from shriven.bus.subjects import LOB_STREAM
from shriven.events import BookSnapshot, Record, Status, encode_record


def encode_wire(r: Record) -> list:
    return msgpack.unpackb(encode_record(r))


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


def test_held_book_snapshots_are_known_per_run_after_a_restart_of_the_sink() -> None:
    ticks = [Status(100, 1, "system", "started"), Status(200, 1, "system", "started")]
    lob = [
        BookSnapshot(150, 1, "binance", "BTCUSDT", 7, ((1.0, 1.0),), ((2.0, 1.0),)),
        BookSnapshot(250, 1, "binance", "BTCUSDT", 9, ((1.0, 1.0),), ((2.0, 1.0),)),
    ]
    seen = Seen()
    runs = seen.add_wires([encode_wire(r) for r in ticks])
    seen.add_snapshot_wires([encode_wire(r) for r in lob], runs)
    # snapshot 1 of each run is held (each run counts from 1); snapshot 2 of run 200 is new
    assert not seen.add(100, LOB_STREAM, 1)
    assert not seen.add(200, LOB_STREAM, 1)
    assert seen.add(200, LOB_STREAM, 2)

"""Bad ticker input is counted, logged once per kind, and never stops the good packets."""

from __future__ import annotations

import json
import random
import struct

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from shriven.events import KiteTick, SeqCounter, StatusKind
from shriven.feeds.base import FeedStats
from shriven.feeds.kite.protocol import (
    encode_message,
    encode_packet,
    is_heartbeat,
    parse_message,
    parse_text,
)


def tick(token: int, mode: str = "full") -> KiteTick:
    levels = tuple((10_000 + i, 5 + i, 1 + i) for i in range(5))
    return KiteTick(0, 0, token, mode, 12_345, 1, 12_340, 99, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 9,
                    levels, levels)  # fmt: skip


GOOD = [encode_packet(tick(t << 8 | 1, m)) for t, m in ((1, "full"), (2, "quote"), (3, "ltp"))]


def parse(message: bytes) -> tuple[list[KiteTick], FeedStats]:
    stats = FeedStats("kite")
    return parse_message(message, 1, SeqCounter(), stats), stats


def test_heartbeat_is_one_byte_and_yields_nothing() -> None:
    assert is_heartbeat(b"\x00")
    ticks, stats = parse(b"\x00")
    assert ticks == [] and stats.parse_errors == 0


def test_packet_of_unexpected_length_is_skipped_and_the_rest_parsed() -> None:
    message = encode_message([GOOD[0], b"\x00" * 10, GOOD[1]])
    ticks, stats = parse(message)
    assert [t.instrument_token >> 8 for t in ticks] == [1, 2]
    assert stats.errors_by_kind == {"kite_packet_length": 1}


def test_count_overrunning_the_buffer_keeps_the_packets_before_it() -> None:
    message = encode_message(GOOD)
    message = struct.pack(">H", 5) + message[2:]
    ticks, stats = parse(message)
    assert len(ticks) == 3
    assert stats.errors_by_kind == {"kite_truncated": 1}


def test_truncated_message_keeps_the_complete_packets() -> None:
    message = encode_message(GOOD)[:-3]  # cut into the last (ltp) packet
    ticks, stats = parse(message)
    assert [t.mode for t in ticks] == ["full", "quote"]
    assert stats.errors_by_kind == {"kite_truncated": 1}


def test_trailing_bytes_after_the_counted_packets_are_counted() -> None:
    ticks, stats = parse(encode_message(GOOD) + b"\x01\x02")
    assert len(ticks) == 3
    assert stats.errors_by_kind == {"kite_trailing_bytes": 1}


def test_each_kind_of_problem_is_logged_once_with_a_hex_sample() -> None:
    stats = FeedStats("kite")
    bad = encode_message([b"\xab" * 10])
    with structlog.testing.capture_logs() as logs:
        for _ in range(5):
            parse_message(bad, 1, SeqCounter(), stats)
    assert stats.errors_by_kind == {"kite_packet_length": 5}
    assert len(logs) == 1
    assert logs[0]["kind"] == "kite_packet_length" and "abab" in logs[0]["hex_sample"]


def test_sequence_numbers_continue_across_messages() -> None:
    seq = SeqCounter()
    first = parse_message(encode_message(GOOD), 1, seq)
    second = parse_message(encode_message(GOOD[:1]), 2, seq)
    assert [t.seq for t in first + second] == [1, 2, 3, 4]
    assert {t.recv_ns for t in second} == {2}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    stats = FeedStats("kite")
    ticks = parse_message(data, 1, SeqCounter(), stats)
    assert all(isinstance(t, KiteTick) for t in ticks)


def _structure_bytes(message: bytes) -> set[int]:
    """Offsets of the packet count and of each packet's length field."""
    out = {0, 1}
    off = 2
    for _ in range(struct.unpack_from(">H", message)[0]):
        out |= {off, off + 1}
        off += 2 + struct.unpack_from(">H", message, off)[0]
    return out


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.integers(0, 2**32), st.integers(0, 400))
def test_corrupting_one_byte_of_a_good_message_never_raises(seed: int, cut: int) -> None:
    rng = random.Random(seed)
    good = encode_message(GOOD * 3)
    originals = parse_message(good, 1, SeqCounter())
    message = bytearray(good)
    at = rng.randrange(len(message))
    message[at] = (message[at] + 1 + rng.randrange(255)) % 256  # always a different byte
    kept = bytes(message[: len(message) - cut])
    stats = FeedStats("kite")
    ticks = parse_message(kept, 1, SeqCounter(), stats)
    assert all(isinstance(t, KiteTick) for t in ticks)
    if at in _structure_bytes(good):
        return  # a count or length field: anything may follow, as long as nothing raised
    # Payload byte: packet boundaries hold, so every complete packet comes back in order and
    # all but the corrupted one unchanged; a cut is counted.
    ends = []
    off = 2
    for _ in originals:
        off += 2 + struct.unpack_from(">H", good, off)[0]
        ends.append(off)
    complete = sum(1 for end in ends if end <= len(kept))
    assert len(ticks) == complete
    differing = [i for i, (a, b) in enumerate(zip(ticks, originals, strict=False)) if a != b]
    assert len(differing) <= 1
    assert stats.parse_errors == (1 if cut else 0)  # fewer packets than counted, or part of one


def test_text_messages_become_venue_message_status_records() -> None:
    seq = SeqCounter(10)
    order = {"type": "order", "data": {"order_id": "1", "status": "COMPLETE"}}
    status = parse_text(json.dumps(order), 5, seq)
    assert status.kind == StatusKind.VENUE_MESSAGE and status.venue == "kite"
    assert json.loads(status.detail) == order
    assert (status.recv_ns, status.seq) == (5, 11)
    error = parse_text(b'{"type": "error", "data": "bad mode"}', 6, seq)
    assert json.loads(error.detail)["type"] == "error"
    assert seq.value == 12


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("not json {", "kite_text_malformed"),
        (b"\xff\xfe", "kite_text_malformed"),
        ("[" * 30_000 + "]" * 30_000, "kite_text_malformed"),
        ('{"type": "order", "data": ' + "[" * 100_000 + "]" * 100_000 + "}", "kite_text_too_large"),
        ('{"type": "message", "data": "' + "x" * 70_000 + '"}', "kite_text_too_large"),
        ("[1, 2]", "kite_text_unexpected"),
        ('{"type": "order", "data": "not an object"}', "kite_text_unexpected"),
        ('{"type": "error", "data": {"x": 1}}', "kite_text_unexpected"),
        ('{"type": "' + "z" * 500 + '", "data": "x"}', "kite_text_unexpected"),
        ('{"type": "order", "data": {"price": NaN}}', "kite_text_unexpected"),
    ],
)
def test_text_message_outside_the_schema_is_counted_under_a_fixed_kind_and_dropped(
    text: str | bytes, kind: str
) -> None:
    stats = FeedStats("kite")
    seq = SeqCounter()
    with structlog.testing.capture_logs() as logs:
        assert parse_text(text, 1, seq, stats) is None
        assert parse_text(text, 2, seq, stats) is None
    assert stats.errors_by_kind == {kind: 2}
    assert seq.value == 0  # no sequence number used: nothing was recorded
    assert len(logs) == 1 and len(logs[0]["hex_sample"]) <= 128


def test_text_message_with_a_lone_surrogate_is_stored_as_ascii() -> None:
    status = parse_text('{"type": "message", "data": "\\ud800 hi"}', 1, SeqCounter())
    assert status is not None
    status.detail.encode("ascii")  # the WAL encoder can always carry it
    assert json.loads(status.detail)["data"] == "\ud800 hi"

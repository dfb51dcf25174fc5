"""The C Kite parser and WAL encoder (shriven._kitetick) against their pure-Python references.

``parse_message`` (C: full ticks come back held as their packet) must give records equal to
``py_parse_message``'s, the same sequence numbers and the same problems counted, on recorded
packets and on random messages, damaged ones included; a held tick must behave as the decoded
record whatever touches it first; ``encode_batch`` must write the bytes ``py_encode_batch``
writes for the same records, held or not, mixed with other venues' records.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import gc
import pickle
import random
import struct
from pathlib import Path

import msgpack
import pytest

from optional_c import c_extension
from shriven.events import (
    BinanceDepth,
    BinanceTrade,
    KiteTick,
    SeqCounter,
    Status,
    decode_batch,
    encode_batch,
    kite_packet,
    py_encode_batch,
)
from shriven.feeds.base import FeedStats
from shriven.feeds.binance.parse import parse_message as parse_binance
from shriven.feeds.kite.protocol import parse_message, py_parse_message

accel = c_extension("shriven._kitetick")

U32_MAX = 2**32 - 1
LENGTHS = (8, 28, 32, 44, 184)


def random_packet(rng: random.Random, length: int) -> bytes:
    def word() -> int:
        r = rng.random()
        return 0 if r < 0.1 else U32_MAX if r < 0.15 else rng.randrange(0, 2**32)

    if length == 184:  # 16 words, then 10 depth entries: qty, price, orders (u16), 2 pad bytes
        body = struct.pack(">16I", *(word() for _ in range(16)))
        for _ in range(10):
            body += struct.pack(">IIH", word(), word(), rng.randrange(2**16)) + b"\x00\x00"
        return body
    if length in (28, 32):  # the index layouts end with a signed change word (+ a timestamp)
        body = struct.pack(">6Ii", *(word() for _ in range(6)), rng.randrange(-(2**31), 2**31))
        return body + (struct.pack(">I", word()) if length == 32 else b"")
    return struct.pack(f">{length // 4}I", *(word() for _ in range(length // 4)))


def random_message(rng: random.Random) -> bytes:
    packets = [random_packet(rng, rng.choice(LENGTHS)) for _ in range(rng.randrange(0, 12))]
    if rng.random() < 0.2:  # a packet length the ticker does not send
        packets.insert(rng.randrange(len(packets) + 1), rng.randbytes(rng.randrange(0, 60)))
    out = struct.pack(">H", len(packets) + rng.choice((0, 0, 0, 1, -1 if packets else 0)))
    for p in packets:
        out += struct.pack(">H", len(p)) + p
    damage = rng.random()
    if damage < 0.15:
        out = out[: rng.randrange(len(out) + 1)]  # truncated anywhere
    elif damage < 0.25:
        out += rng.randbytes(rng.randrange(1, 9))  # trailing bytes
    return out


def both(message: bytes, seq_start: int = 0) -> tuple[list[KiteTick], list[KiteTick]]:
    ours, theirs = SeqCounter(seq_start), SeqCounter(seq_start)
    s_ours, s_theirs = FeedStats("kite"), FeedStats("kite")
    held = parse_message(message, 1_764_000_000_123_456_789, ours, s_ours)
    ref = py_parse_message(message, 1_764_000_000_123_456_789, theirs, s_theirs)
    assert ours.value == theirs.value
    assert s_ours.errors_by_kind == s_theirs.errors_by_kind
    return held, ref


def test_random_messages_parse_to_the_reference_records_and_problems() -> None:
    rng = random.Random(14)
    kinds: set[str] = set()
    for i in range(1000):
        message = random_message(rng)
        held, ref = both(message, i)
        # the byte-for-byte wire form first, while the full ticks are still held
        assert encode_batch(held) == py_encode_batch(ref)
        assert held == ref
        s = FeedStats("kite")
        parse_message(message, 0, SeqCounter(), s)
        kinds |= set(s.errors_by_kind)
    assert kinds == {"kite_truncated", "kite_packet_length", "kite_trailing_bytes"}


def test_recorded_packets_parse_to_the_reference(kite_fixtures: Path) -> None:
    full = base64.b64decode((kite_fixtures / "ticker_full.packet").read_text())
    quote = base64.b64decode((kite_fixtures / "ticker_quote.packet").read_text())
    message = struct.pack(">HH", 3, 184) + full + struct.pack(">H", 44) + quote
    message += struct.pack(">H", 184) + full
    held, ref = both(message)
    assert [kite_packet(t) for t in held] == [full, None, full]
    assert encode_batch(held) == py_encode_batch(ref)
    assert decode_batch(encode_batch(held)) == ref
    assert held == ref
    assert kite_packet(held[0]) is None  # comparing read the fields


def test_heartbeat_and_empty_messages_give_no_ticks() -> None:
    for message in (b"", b"\x00", b"\x00\x00"):
        held, ref = both(message, 7)
        assert held == ref == []


def held_and_reference(seed: int = 1) -> tuple[KiteTick, KiteTick]:
    packet = random_packet(random.Random(seed), 184)
    message = struct.pack(">HH", 1, 184) + packet
    (held,), (ref,) = both(message)
    assert kite_packet(held) == packet
    return held, ref


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(KiteTick)])
def test_reading_any_field_of_a_held_tick_gives_the_reference_value(field: str) -> None:
    held, ref = held_and_reference()
    assert getattr(held, field) == getattr(ref, field)
    assert held == ref


@pytest.mark.parametrize("field", ["last_price", "bids", "asks", "change", "seq"])
def test_setting_a_field_of_a_held_tick_keeps_every_other_field(field: str) -> None:
    held, ref = held_and_reference()
    setattr(held, field, ((1, 2, 3),) if field in ("bids", "asks") else 42)
    setattr(ref, field, ((1, 2, 3),) if field in ("bids", "asks") else 42)
    assert kite_packet(held) is None
    assert held == ref
    assert encode_batch([held]) == py_encode_batch([ref])


def test_a_held_tick_copies_pickles_replaces_and_prints_as_the_reference() -> None:
    held, ref = held_and_reference()
    assert pickle.loads(pickle.dumps(held)) == ref
    held, _ = held_and_reference()
    assert copy.copy(held) == ref
    held, _ = held_and_reference()
    assert dataclasses.replace(held, seq=99) == dataclasses.replace(ref, seq=99)
    held, _ = held_and_reference()
    assert dataclasses.asdict(held) == dataclasses.asdict(ref)
    held, _ = held_and_reference()
    assert repr(held) == repr(ref)
    del held.oi
    with pytest.raises(AttributeError, match="'oi'"):
        _ = held.oi


def test_batches_mixing_held_ticks_and_other_records_encode_as_the_reference() -> None:
    rng = random.Random(3)
    depth = parse_binance(
        b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT",'
        b'"U":5,"u":6,"b":[["100.5","1.0"]],"a":[["101.00","0.5"],["102","0"]]}}',
        9,
        1,
    )
    assert type(depth) is BinanceDepth
    others = [
        depth,
        BinanceTrade(1, 2, "BTCUSDT", 7, "100.5", "0.1", 3, 4, True),
        Status(5, 6, "kite", "connected", "", "{}"),
        KiteTick(1, 2, 256265, "ltp", 5),  # a tick built from its fields
    ]
    for _ in range(200):
        batch = []
        for _ in range(rng.randrange(0, 30)):
            if rng.random() < 0.6:
                (tick,) = parse_message(
                    struct.pack(">HH", 1, 184) + random_packet(rng, 184),
                    rng.choice((0, 1, 2**40, 2**63 - 1, -1, -(2**63))),
                    SeqCounter(rng.randrange(0, 2**62)),
                )
                batch.append(tick)
            else:
                batch.append(rng.choice(others))
        expected = py_encode_batch([copy.copy(r) for r in batch])  # decoded copies
        assert encode_batch(batch) == expected
        assert len(msgpack.unpackb(expected)) == len(batch)


def test_a_tick_decoded_or_a_list_changed_while_a_batch_packs_is_still_encoded_right() -> None:
    # The encoder of the runs between held ticks is Python code: during it the loop thread may
    # read a field of a tick the WAL thread is packing (decoding it), or anything may change
    # the list. The packer must notice, not read the decoded tick's tuple as its packet.
    trade = BinanceTrade(1, 2, "BTCUSDT", 7, "100.5", "0.1", 3, 4, True)
    held, ref = held_and_reference(21)
    expected = py_encode_batch([trade, ref, trade])

    def decoding(run: list[object]) -> bytes:
        _ = held.oi
        return py_encode_batch(run)  # type: ignore[arg-type]

    assert accel.pack_batch([trade, held, trade], decoding) == expected
    # the list's only reference to its held tick: the packer must keep its own
    batch: list[object] = [trade, held_and_reference(21)[0], trade]

    def clearing(run: list[object]) -> bytes:
        batch.clear()
        gc.collect()
        return py_encode_batch(run)  # type: ignore[arg-type]

    assert accel.pack_batch(batch, clearing) == expected


def test_a_held_tick_decoded_by_its_own_stamp_is_encoded_as_the_reference() -> None:
    class Stamp:  # not an int: msgpack refuses it, the packer asks its __index__
        def __index__(self) -> int:
            _ = tick.oi  # decodes the tick while the packer converts its stamp
            return 5

    (tick,) = parse_message(struct.pack(">HH", 1, 184) + bytes(184), Stamp(), SeqCounter())
    assert kite_packet(tick) is not None
    with pytest.raises(TypeError):
        py_encode_batch([tick])
    (tick,) = parse_message(struct.pack(">HH", 1, 184) + bytes(184), Stamp(), SeqCounter())
    with pytest.raises(TypeError):
        encode_batch([tick])


def test_a_held_tick_whose_stamp_msgpack_cannot_carry_fails_as_the_reference() -> None:
    (tick,) = parse_message(struct.pack(">HH", 1, 184) + bytes(184), 2**64, SeqCounter())
    (ref,) = py_parse_message(struct.pack(">HH", 1, 184) + bytes(184), 2**64, SeqCounter())
    with pytest.raises(OverflowError):
        py_encode_batch([ref])
    with pytest.raises(OverflowError):
        encode_batch([tick])


def test_book_sides_of_a_held_tick_are_the_priced_levels_as_floats() -> None:
    held, ref = held_and_reference(5)
    bids, asks = accel.kite_sides(held, 100)
    assert bids == [(p / 100, float(q)) for p, q, _o in ref.bids if p and q]
    assert asks == [(p / 100, float(q)) for p, q, _o in ref.asks if p and q]
    assert kite_packet(held) is not None  # the book read the packet, not the fields
    assert accel.kite_sides(ref, 100) is None


def test_a_held_tick_set_to_a_container_is_seen_by_the_cycle_collector() -> None:
    held, _ = held_and_reference()
    assert not gc.is_tracked(held)  # ints, a str and bytes: no cycle can run through it
    box: list[object] = []
    held.oi = box  # type: ignore[assignment]
    box.append(held)
    assert gc.is_tracked(held)


def test_the_recorders_pass_over_kite_ticks_in_c_matches_its_reference() -> None:
    from shriven.pipeline.recorder import py_split_batch

    rng = random.Random(8)
    trade = BinanceTrade(1, 2, "BTCUSDT", 7, "100.5", "0.1", 3, 4, True)
    status = Status(5, 6, "kite", "connected", "", "{}")
    for _ in range(300):
        batch: list[object] = []
        for _ in range(rng.randrange(0, 40)):
            kind = rng.random()
            token = rng.choice((256265, 12008962, 408065))  # few tokens: repeats in a batch
            if kind < 0.5:
                packet = struct.pack(">I", token) + random_packet(rng, 184)[4:]
                (tick,) = parse_message(
                    struct.pack(">HH", 1, 184) + packet, rng.randrange(10**18), SeqCounter()
                )
                if rng.random() < 0.2:
                    _ = tick.oi  # read: no longer held
                batch.append(tick)
            elif kind < 0.7:
                mode = rng.choice(("ltp", "quote", "full"))
                batch.append(KiteTick(rng.randrange(10**18), 1, token, mode, 5))
            elif kind < 0.75:
                odd = KiteTick(3, 1, token, "full", 5)
                del odd.mode
                batch.append(odd)
            else:
                batch.append(rng.choice((trade, status)))
        c_latest: dict[int, object] = {}
        ref_latest: dict[int, object] = {}
        c_last, c_rest = accel.split_batch(batch, c_latest)
        ref_last, ref_rest = py_split_batch(batch, ref_latest)  # type: ignore[arg-type]
        assert c_last == ref_last
        assert [id(r) for r in c_rest] == [id(r) for r in ref_rest]
        assert [(k, id(v)) for k, v in c_latest.items()] == [
            (k, id(v)) for k, v in ref_latest.items()
        ]
        assert all(kite_packet(t) is None for t in c_rest if type(t) is KiteTick)


def test_python_run_by_the_passes_over_a_tick_cannot_make_them_read_freed_memory() -> None:
    from shriven.pipeline.recorder import py_split_batch

    class Mode(str):  # compared in Python: here it empties the batch being split
        def __eq__(self, other: object) -> bool:
            batch.clear()
            return str.__eq__(self, other)

        __hash__ = str.__hash__

    for split in (accel.split_batch, py_split_batch):  # the same answer: the batch stops
        odd = KiteTick(3, 1, 256265, Mode("full"), 5)
        batch: list[object] = [odd, *(KiteTick(4, 2, 408065, "full", 6) for _ in range(50))]
        latest: dict[int, object] = {}
        last, rest = split(batch, latest)  # type: ignore[operator]
        assert last == 3 and rest == [odd] and latest == {256265: odd}

    class Divisor:  # an __index__ that decodes the tick whose depth is being read
        def __index__(self) -> int:
            _ = held.oi
            return 100

    held, _ = held_and_reference(4)
    assert accel.kite_sides(held, Divisor()) is None  # no longer held: the caller reads fields


def test_one_held_tick_encodes_alone_as_the_reference_and_stays_held() -> None:
    from shriven.events import encode_record

    held, ref = held_and_reference(11)
    assert encode_record(held) == encode_record(ref)
    assert kite_packet(held) is not None

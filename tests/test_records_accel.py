"""The C record reader (shriven._records, behind events.decode_batch) against the pure-Python
decoders it replaces (decode_wires of unpack_batch): equal records with fields of the same
types for every record type, and on damaged or unusual payloads either the same records or None
(the caller then takes the Python path, which raises the decoder's error)."""

from __future__ import annotations

import random

import msgpack
import pytest

from shriven import events
from shriven.events import (
    BinanceAggTrade,
    BinanceBookTicker,
    BinanceDepth,
    BinanceDepthSnapshot,
    BinanceForceOrder,
    BinanceFuturesDepth,
    BinanceFuturesDepthSnapshot,
    BinanceMarkPrice,
    BinanceOpenInterest,
    BinanceTrade,
    BookSnapshot,
    KiteTick,
    Record,
    Status,
    decode_batch,
    decode_wires,
    encode_batch,
    unpack_batch,
)

pytestmark = pytest.mark.skipif(
    not events.DECODE_ACCELERATED, reason="shriven._records was not built (no C compiler)"
)
c_decode = events._c_decode_batch

INT64 = (1 << 63) - 1


def _int(rng: random.Random) -> int:
    return rng.choice([0, 1, 127, 128, -1, -33, 255, 65_535, 1 << 31, -(1 << 40), INT64])


def _text(rng: random.Random) -> str:
    return rng.choice(["", "BTCUSDT", "60000.01000000", "é✓", "x" * 40, "0.1"])


def _pairs(rng: random.Random) -> tuple[tuple[str, str], ...]:
    return tuple((_text(rng), _text(rng)) for _ in range(rng.randint(0, 4)))


def random_record(rng: random.Random) -> Record:
    i, s = _int, _text
    t = rng.randrange(13)
    r = rng
    if t == 0:
        levels = tuple((i(r), i(r), i(r)) for _ in range(rng.randint(0, 6)))
        mode = rng.choice(["ltp", "quote", "full"])
        ints = [i(r) for _ in range(15)]
        return KiteTick(i(r), i(r), i(r), mode, *ints, levels, levels[:2], i(r))  # type: ignore[arg-type]
    if t == 1:
        return BinanceTrade(i(r), i(r), s(r), i(r), s(r), s(r), i(r), i(r), rng.random() < 0.5)
    if t == 2:
        return BinanceDepth(i(r), i(r), s(r), i(r), i(r), i(r), _pairs(r), _pairs(r))
    if t == 3:
        return BinanceDepthSnapshot(i(r), i(r), s(r), i(r), _pairs(r), _pairs(r))
    if t == 4:
        floats = tuple((rng.random() * 1e5, float(rng.randint(0, 9))) for _ in range(3))
        return BookSnapshot(i(r), i(r), s(r), s(r), i(r), floats, ())
    if t == 5:
        return Status(i(r), i(r), s(r), s(r), s(r), s(r))
    if t == 6:
        return BinanceFuturesDepth(
            i(r), i(r), s(r), s(r), i(r), i(r), i(r), i(r), i(r), _pairs(r), _pairs(r)
        )
    if t == 7:
        return BinanceFuturesDepthSnapshot(
            i(r), i(r), s(r), s(r), i(r), i(r), i(r), _pairs(r), _pairs(r)
        )
    if t == 8:
        return BinanceAggTrade(
            i(r), i(r), s(r), s(r), i(r), s(r), s(r), i(r), i(r), i(r), i(r), r.random() < 0.5
        )
    if t == 9:
        return BinanceBookTicker(i(r), i(r), s(r), s(r), i(r), s(r), s(r), s(r), s(r), i(r), i(r))
    if t == 10:
        return BinanceMarkPrice(i(r), i(r), s(r), s(r), i(r), s(r), s(r), s(r), s(r), i(r))
    if t == 11:
        return BinanceForceOrder(i(r), i(r), s(r), s(r), i(r), *[s(r) for _ in range(9)], i(r))  # type: ignore[arg-type]
    return BinanceOpenInterest(i(r), i(r), s(r), s(r), s(r), i(r))


def _field_types(r: Record) -> list[object]:
    def shape(v: object) -> object:
        if type(v) is tuple:
            return ("tuple", *(shape(x) for x in v))
        return type(v)

    return [type(r), *(shape(getattr(r, name)) for name in r.__slots__)]  # type: ignore[union-attr]


def reference(payload: bytes) -> list[Record] | Exception:
    try:
        return decode_wires(unpack_batch(payload))
    except (ValueError, msgpack.UnpackException) as exc:
        return exc


def test_every_record_type_reads_as_the_python_decoders_read_it() -> None:
    rng = random.Random(14)
    for _ in range(300):
        records = [random_record(rng) for _ in range(rng.randint(0, 30))]
        payload = encode_batch(records)
        got = c_decode(payload)
        assert got is not None  # plain records: the C path serves them
        want = reference(payload)
        assert got == want == records
        assert [_field_types(r) for r in got] == [_field_types(r) for r in want]  # type: ignore[union-attr]
        assert decode_batch(payload) == records


def test_a_kite_tick_of_layout_1_reads_its_change_as_zero() -> None:
    tick = KiteTick(5, 6, 408065, "full", 100, bids=((1, 2, 3),), change=9)
    wire = msgpack.packb([[*msgpack.unpackb(encode_batch([tick]))[0][:-1]]])
    got = c_decode(wire)
    assert got == reference(wire) == [KiteTick(5, 6, 408065, "full", 100, bids=((1, 2, 3),))]


@pytest.mark.parametrize(
    "wire",
    [
        [2, 1, 1, 2, "S", 1 << 63, "1", "1", 0, 0, True],  # an id past int64
        [2, 1, 1, 2, "S", 1.5, "1", "1", 0, 0, True],  # a float id
        [2, 1, 1, 2, "S", 1, "1", "1", 0, 0, True, "later"],  # a field of a later layout
        [5, 1, 1, 2, "kite", "1", 3, [[1, 2]], []],  # int book levels
        [6, True, 1, 2, "v", "k", "i", "d"],  # a bool layout version
        [1, 1, 1, 2, 3, True, 5, *[0] * 14, [1, 2, 3], []],  # a bool Kite mode
    ],
)
def test_unusual_forms_are_left_to_the_python_decoders(wire: list) -> None:
    payload = msgpack.packb([wire])
    assert c_decode(payload) is None
    assert decode_batch(payload) == reference(payload)


def test_damaged_payloads_read_as_the_python_decoders_read_them_or_not_at_all() -> None:
    rng = random.Random(5)
    base = encode_batch([random_record(rng) for _ in range(40)])
    for _ in range(2_000):
        data = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.2:
            data = data[: rng.randrange(len(data))]
        payload = bytes(data)
        got = c_decode(payload)
        want = reference(payload)
        if got is None:
            continue
        assert not isinstance(want, Exception), (payload, want)
        assert got == want
        assert [_field_types(r) for r in got] == [_field_types(r) for r in want]  # type: ignore[union-attr]

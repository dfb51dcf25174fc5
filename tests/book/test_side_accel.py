"""The C book side (shriven.book._levels.Side) against its pure-Python reference (levels.PySide).

Both take the same random sequences of changes, replacements and bad input; after every step
they must give the same answers to every read, with the same float values bit for bit, and
raise the same exception type (leaving the side as it was).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optional_c import c_extension
from shriven.book import features
from shriven.book.levels import PySide, py_touching
from shriven.book.orderbook import OrderBook, PyOrderBook

accel = c_extension("shriven.book._levels")

# few prices, so changes hit the same levels often; quantities include 0 (a delete)
price = st.sampled_from([round(100 + i * 0.25, 2) for i in range(-12, 13)] + [0.0])
qty = st.one_of(st.just(0.0), st.floats(min_value=1e-8, max_value=1e6, allow_nan=False))
good_level = st.one_of(
    st.tuples(price, qty),
    st.tuples(price, qty).map(lambda lv: (f"{lv[0]:.8f}", f"{lv[1]:.8f}")),
    st.tuples(price, qty).map(list),
)
bad_level = st.sampled_from(
    [("NaN", "1"), ("101", "-1"), (float("inf"), 1.0), ("abc", "1"), ("1",), (1.0, 2.0, 3.0), "12"]
)
levels = st.lists(st.one_of(good_level, good_level, good_level, bad_level), max_size=10)
packed = st.lists(st.tuples(price, qty), max_size=10).map(
    lambda lv: struct.pack(f"<{2 * len(lv)}d", *[x for pair in lv for x in pair])
)
step = st.one_of(
    st.tuples(st.just("apply"), levels),
    st.tuples(st.just("apply"), packed),
    st.tuples(st.just("apply"), st.just(struct.pack("<3d", 1.0, 2.0, 3.0))),
    st.tuples(st.just("replace"), levels),
    st.tuples(st.just("clear"), st.just(None)),
)
probes = [*(round(100 + i * 0.25, 2) for i in range(-13, 14)), 0.0, 100, "100", None, 1e400]


def bits(xs: object) -> list[bytes]:
    return [struct.pack("<d", x) for x in xs]  # type: ignore[attr-defined]


def pair_bits(levels_: list[tuple[float, float]]) -> list[bytes]:
    return bits(x for lv in levels_ for x in lv)


def outcome(fn: object, *args: object) -> object:
    try:
        return fn(*args)  # type: ignore[operator]
    except Exception as exc:
        return type(exc)


def same_reads(c: object, py: PySide) -> None:
    assert pair_bits(c.levels()) == pair_bits(py.levels())  # type: ignore[attr-defined]
    assert bits(c.prices()) == bits(py.prices())  # type: ignore[attr-defined]
    assert py.prices() == sorted(py, reverse=py.descending)
    assert len(c) == len(py) and bool(c) == bool(py)  # type: ignore[arg-type]
    assert c == py and py == c and c == dict(py)
    assert (c != py) is False
    assert c.best() == py.best() and c.best_price() == py.best_price()  # type: ignore[attr-defined]
    for n in (-1, 0, 1, 3, 50):
        assert c.top(n) == py.top(n)  # type: ignore[attr-defined]
        assert bits([c.sum_best(n)]) == bits([py.sum_best(n)])  # type: ignore[attr-defined]
    for edge in (0.0, 97.1, 99.8, 100.0, 100.13, 103.0, 1e9, float("nan")):
        assert bits([c.sum_within(edge)]) == bits([py.sum_within(edge)])  # type: ignore[attr-defined]
    for p in probes:
        assert (p in c) == (p in py)  # type: ignore[operator]
        assert c.get(p, "none") == py.get(p, "none")  # type: ignore[attr-defined]
        assert outcome(c.__getitem__, p) == outcome(py.__getitem__, p)  # type: ignore[attr-defined]
    assert sorted(c) == sorted(py)  # type: ignore[call-overload]
    assert sorted(c.items()) == sorted(py.items())  # type: ignore[attr-defined]


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=14), st.booleans())
def test_c_side_equals_the_python_reference_after_any_steps(steps: list, descending: bool) -> None:
    c = accel.Side(descending)
    py = PySide(descending)
    for op, arg in steps:
        if op == "clear":
            c.clear()
            py.clear()
        else:
            assert outcome(getattr(c, op), arg) == outcome(getattr(py, op), arg)
        same_reads(c, py)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(packed, packed), max_size=12), st.integers(1, 6), st.floats(0, 400))
def test_books_and_features_equal_the_reference_books(diffs: list, n: int, band_bps: float) -> None:
    c = OrderBook()
    py = PyOrderBook()
    for b, a in diffs:
        assert c.apply(b, a) == py.apply(b, a)
        assert accel.touching(c.bids, c.asks) == py_touching(py.bids, py.asks)
        assert c == py and c.levels() == py.levels() and c.top(n) == py.top(n)
        assert c.bid_keys == py.bid_keys and c.ask_keys == py.ask_keys
        assert c.is_crossed() == py.is_crossed() and c.is_locked() == py.is_locked()
        fc, fp = features(c, n, band_bps), features(py, n, band_bps)
        assert [bits([x]) if type(x) is float else x for x in fc] == [
            bits([x]) if type(x) is float else x for x in fp
        ]


def test_a_side_reads_as_a_mapping_and_refuses_writes() -> None:
    side = accel.Side()
    side.apply([("100.5", "1"), ("99", "2")])
    assert isinstance(side, Mapping) and dict(side) == {100.5: 1.0, 99.0: 2.0}
    assert list(side) == [100.5, 99.0]  # best first
    assert side[99] == 2.0 and 98.0 not in side and side.get(98.0) is None
    with pytest.raises(KeyError):
        side[98.0]
    with pytest.raises(TypeError):
        side[98.0] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        hash(side)


def test_a_bad_value_anywhere_leaves_the_side_unchanged() -> None:
    for side in (accel.Side(), PySide()):
        side.apply([(100.0, 1.0)])
        with pytest.raises(ValueError):
            side.apply([("101", "1"), ("100", "0"), ("102", "NaN")])
        with pytest.raises(ValueError):
            side.replace([("101", "1"), ("102", "-1")])
        with pytest.raises(ValueError):
            side.apply(struct.pack("<4d", 101.0, 1.0, 102.0, float("nan")))
        assert side == {100.0: 1.0} and side.prices() == [100.0]


def test_a_thousand_level_replace_keeps_the_last_repeat_and_drops_zeros() -> None:
    rows = [(float(p), float(p % 7)) for p in range(1000, 0, -1)] + [(500.0, 9.0), (3.0, 0.0)]
    for descending in (False, True):
        c, py = accel.Side(descending), PySide(descending)
        c.replace(rows)
        py.replace(rows)
        assert c.levels() == py.levels() and c[500.0] == 9.0 and 3.0 not in c and 7.0 not in c


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 300),
    st.lists(st.tuples(st.integers(0, 320), st.sampled_from([0.0, 1.5, 2.25])), max_size=60),
    st.booleans(),
)
def test_changes_at_any_depth_of_a_deep_side_equal_the_reference(
    depth: int, changes: list, descending: bool
) -> None:
    # deeper than the C side's window of best levels, so both of its searches are exercised
    start = [(float(p), 1.0) for p in range(depth)]
    c, py = accel.Side(descending), PySide(descending)
    c.replace(start)
    py.replace(start)
    for p, q in changes:
        level = [(p + 0.5 * (p % 2), q)]
        assert c.apply(level) == py.apply(level)
    assert bits(c.prices()) == bits(py.prices()) and c == py
    for p in range(-1, 322):
        assert c.get(float(p)) == py.get(float(p))
    for edge in (-1.0, 10.0, 150.5, 300.0, 1e9, float("nan")):
        assert bits([c.sum_within(edge)]) == bits([py.sum_within(edge)])

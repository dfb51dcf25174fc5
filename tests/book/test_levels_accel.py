"""The C level code (shriven.book._levels) against its pure-Python reference (shriven.book.levels).

Both are run on the same inputs, from fresh copies of the same side; they must agree on the
result, on the exception type, and on the side left behind (dict and sorted price list, with
the same float values bit for bit).
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optional_c import c_extension
from shriven.book import levels as ref

accel = c_extension("shriven.book._levels")

# decimals as Binance writes them, and the texts float() reads another way or refuses
decimals = st.builds(
    lambda i, f: i + ("." + f if f else ""),
    st.text("0123456789", min_size=1, max_size=20),
    st.text("0123456789", max_size=24),
)
odd_texts = st.sampled_from(
    ["", ".", ".5", "5.", "1e3", "1E-5", " 7", "7 ", "1_0", "+1", "-0", "-1", "nan", "NaN", "inf",
     "-inf", "1e400", "abc", "0x10", "١٢", "1.2.3", "00012.50", "0.000000000000000000000001"]
)  # fmt: skip
numbers = st.one_of(
    decimals,
    odd_texts,
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-5, max_value=10**20),
    st.none(),
)
prices = st.one_of(st.sampled_from(["100.5", "100.50", "99.25", "101", "0.1"]), numbers)
qtys = st.one_of(st.sampled_from(["0", "0.00000000", "1.5", "2.25000000", 0.0]), numbers)
level = st.one_of(
    st.tuples(prices, qtys),
    st.tuples(prices, qtys).map(list),
    st.tuples(prices),
    st.tuples(prices, qtys, qtys),
    st.just("12"),
)
diffs = st.lists(st.lists(level, max_size=8), max_size=10)


def bits(xs: object) -> list[bytes]:
    return [struct.pack("<d", x) for x in xs]  # type: ignore[attr-defined]


def outcome(fn: object, *args: object) -> object:
    try:
        return fn(*args)  # type: ignore[operator]
    except Exception as exc:
        return type(exc)


@settings(max_examples=200, deadline=None)
@given(diffs, st.booleans())
def test_c_apply_side_equals_the_python_reference_on_any_input(
    batches: list, descending: bool
) -> None:
    c_side: dict[float, float] = {}
    c_keys: list[float] = []
    py_side: dict[float, float] = {}
    py_keys: list[float] = []
    for levels in batches:
        packed = accel.pack_levels(levels)
        assert packed == ref.py_pack_levels(levels)
        got = outcome(accel.apply_side, c_side, c_keys, levels, descending)
        want = outcome(ref.py_apply_side, py_side, py_keys, levels, descending)
        assert got == want
        if packed is not None:  # the packed doubles are applied as the levels they came from
            assert bits(c_keys) == bits(py_keys)
            assert outcome(accel.apply_side, c_side, c_keys, packed, descending) == got
            assert outcome(ref.py_apply_side, py_side, py_keys, packed, descending) == want
        assert bits(c_keys) == bits(py_keys)
        assert bits(c_side.values()) == bits(py_side.values())
        assert c_side == py_side
        assert c_keys == sorted(c_side, reverse=descending)


@settings(max_examples=500, deadline=None)
@given(decimals)
def test_c_reads_every_decimal_to_the_float_python_reads(text: str) -> None:
    side: dict[float, float] = {}
    keys: list[float] = []
    accel.apply_side(side, keys, [(text, "1")], False)
    assert bits(keys) == bits([float(text)])


def test_a_bad_value_anywhere_leaves_the_side_unchanged() -> None:
    side = {100.0: 1.0}
    keys = [100.0]
    nan_packed = struct.pack("<4d", 101.0, 1.0, 102.0, float("nan"))
    for apply in (accel.apply_side, ref.py_apply_side):
        with pytest.raises(ValueError):
            apply(side, keys, [("101", "1"), ("99", "0"), ("102", "NaN")], False)
        with pytest.raises(ValueError):
            apply(side, keys, nan_packed, False)
        with pytest.raises(ValueError):
            apply(side, keys, b"\0" * 12, False)  # not whole pairs of doubles
        assert side == {100.0: 1.0} and keys == [100.0]


def test_the_fast_path_rounds_like_float_at_its_limits() -> None:
    # 15 significant digits and 22 decimals are the fast path's edges; just past them float()
    # itself does the reading
    edges = ("999999999999999", "9999999999999999", "0.1234567890123456789012",
             "0.12345678901234567890123", "123456789012345.0", "0.3", "61837.63000000")  # fmt: skip
    for text in edges:
        keys: list[float] = []
        accel.apply_side({}, keys, [(text, "1")], True)
        assert bits(keys) == bits([float(text)]), text


def test_a_value_whose_float_changes_the_levels_read_is_an_error_not_a_crash() -> None:
    # float() of a value that is not a str or float runs its __float__, which could empty the
    # list being read; the C reader must not go on with the items it had fetched before
    class Shrinking:
        def __float__(self) -> float:
            levels.clear()
            return 1.0

    for read in (
        lambda lv: accel.Side().apply(lv),
        lambda lv: accel.Side().replace(lv),
        lambda lv: accel.apply_side({}, [], lv, False),
    ):
        levels = [("1", Shrinking()), *(("2.5", "3") for _ in range(200))]
        with pytest.raises(ValueError, match="changed while they were read"):
            read(levels)
    levels = [("1", Shrinking()), *(("2.5", "3") for _ in range(200))]
    assert accel.pack_levels(levels) is None

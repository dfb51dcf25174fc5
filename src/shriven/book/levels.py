"""One side of a book: level changes applied to a dict of price -> quantity and its sorted prices.

A side is a ``dict`` {price: quantity} (floats) plus a ``list`` of its prices sorted with the best
LAST: bids ascending, asks descending. Updates of a price already there (most changes) touch only
the dict; inserts and deletes also move the prices after the change's position in the list, and
near the best that is a handful. Reads take the list's tail, best first, in C-level slices.

:func:`apply_side` and :func:`pack_levels` are the C versions from ``shriven.book._levels``
when that optional extension was built (``pip install`` builds it wherever a C compiler is
found), else the pure-Python references :func:`py_apply_side` and :func:`py_pack_levels` here,
which ``tests/book/test_levels_accel.py`` checks the C versions against. Measured on the
BTCUSDT workload of ``benchmarks/book_update.py``: the references cost about what
python-binance's DepthCache does per change; the C versions a third of that.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable
from operator import neg

__all__ = [
    "ACCELERATED",
    "apply_side",
    "levels_valid",
    "pack_levels",
    "position",
    "py_apply_side",
    "py_pack_levels",
]

_INF = float("inf")


def _read_levels(levels: Iterable[object]) -> list[tuple[float, float]]:
    """Every (price, quantity) as floats read the way ``float()`` reads them; ValueError (or
    float()'s own TypeError) when one is not a pair of finite, non-negative numbers."""
    out: list[tuple[float, float]] = []
    for lvl in levels:
        if (type(lvl) is not tuple and type(lvl) is not list) or len(lvl) != 2:  # type: ignore[arg-type]
            raise ValueError(f"a level must be a (price, quantity) pair, not {lvl!r}")
        p = float(lvl[0])  # type: ignore[index]
        if not (0.0 <= p < _INF):  # False for NaN too
            raise ValueError(f"not a finite, non-negative number: {lvl[0]!r}")  # type: ignore[index]
        q = float(lvl[1])  # type: ignore[index]
        if not (0.0 <= q < _INF):
            raise ValueError(f"not a finite, non-negative number: {lvl[1]!r}")  # type: ignore[index]
        out.append((p, q))
    return out


def position(keys: list[float], price: float, descending: bool) -> int:
    """Index of the first price in ``keys`` that is not before ``price`` (where it belongs)."""
    if descending:
        return bisect_left(keys, -price, key=neg)
    return bisect_left(keys, price)


def _unpack(packed: bytes) -> list[tuple[float, float]]:
    if len(packed) % 16:
        raise ValueError("packed levels must be pairs of doubles")
    values = array("d", packed)
    for x in values:
        if not (0.0 <= x < _INF):
            raise ValueError("not a finite, non-negative number in packed levels")
    it = iter(values)
    return list(zip(it, it, strict=False))  # an even count: checked above


def py_apply_side(
    side: dict[float, float], keys: list[float], levels: Iterable[object] | bytes, descending: bool
) -> int:
    """Set each (price, quantity) on one side, quantity 0 removing the price; returns the levels
    processed. Levels are pairs of floats or decimal strings, or what :func:`pack_levels`
    made of them. If any is not a finite, non-negative number nothing changes and ValueError is
    raised."""
    pairs = _unpack(levels) if type(levels) is bytes else _read_levels(levels)
    for p, q in pairs:
        if q:
            if p not in side:
                keys.insert(position(keys, p, descending), p)
            side[p] = q
        elif p in side:
            del side[p]
            del keys[position(keys, p, descending)]
        # removing a price the side does not have changes nothing
    return len(pairs)


def py_pack_levels(levels: Iterable[object]) -> bytes | None:
    """The levels read once, as native doubles (price, quantity, price, ...) that
    :func:`apply_side` takes without reading the text again; None when one is not a (price,
    quantity) pair of finite, non-negative numbers. The keeper checks a diff with this before
    the sequence rules see it, then applies the result."""
    try:
        pairs = _read_levels(levels)
    except (ValueError, TypeError, OverflowError):
        return None
    return array("d", [x for pair in pairs for x in pair]).tobytes()


def levels_valid(levels: Iterable[object]) -> bool:
    """True when every level is a (price, quantity) pair of finite, non-negative numbers."""
    return pack_levels(levels) is not None


try:
    from shriven.book._levels import apply_side, pack_levels  # type: ignore[import-not-found]

    ACCELERATED = True
except ImportError:  # the optional C extension was not built: the references do the work
    apply_side = py_apply_side
    pack_levels = py_pack_levels
    ACCELERATED = False

"""One side of a book: level changes applied to prices kept sorted, best last.

:class:`Side` is what :class:`shriven.book.OrderBook` keeps per side: the C type from
``shriven.book._levels`` when that optional extension was built (``pip install`` builds it
wherever a C compiler is found), two sorted arrays of doubles; else :class:`PySide`, its
pure-Python reference, a ``dict`` {price: quantity} (floats) plus a ``list`` of its prices
sorted with the best LAST: bids ascending, asks descending. ``tests/book/test_side_accel.py``
checks the two against each other.

:func:`apply_side` and :func:`pack_levels` work on such a dict and list (and on the levels a diff
carries): the C versions when the extension was built, else the references
:func:`py_apply_side` and :func:`py_pack_levels` here, which ``tests/book/test_levels_accel.py``
checks the C versions against.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from operator import neg

__all__ = [
    "ACCELERATED",
    "PySide",
    "Side",
    "apply_side",
    "levels_valid",
    "pack_levels",
    "position",
    "py_apply_side",
    "py_pack_levels",
    "py_touching",
    "touching",
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


class PySide(dict[float, float]):
    """One side of a book in Python: the reference for the C ``Side`` the books use.

    A dict {price: quantity} and its prices sorted best LAST (see the module's docstring), with
    the operations :class:`shriven.book.OrderBook` needs. The C type keeps the same levels in
    two sorted arrays of doubles; ``tests/book/test_side_accel.py`` checks that both give the
    same answers, bit for bit, after any sequence of changes."""

    __slots__ = ("_keys", "descending")

    def __init__(self, descending: bool = False) -> None:
        super().__init__()
        self._keys: list[float] = []
        self.descending = descending

    def apply(self, levels: Iterable[object] | bytes) -> int:
        """Set each (price, quantity), quantity 0 removing the price; the levels processed.
        ValueError, and nothing changed, when one is not a finite, non-negative number."""
        return py_apply_side(self, self._keys, levels, self.descending)

    def replace(self, levels: Iterable[object]) -> None:
        """Exactly these levels: a later repeat of a price wins, zero quantities are left out."""
        latest = dict(_read_levels(levels))
        super().clear()
        self.update((p, q) for p, q in latest.items() if q)
        self._keys = sorted(self, reverse=self.descending)

    def clear(self) -> None:
        super().clear()
        self._keys.clear()

    def best(self) -> tuple[float, float] | None:
        return (self._keys[-1], self[self._keys[-1]]) if self._keys else None

    def best_price(self) -> float | None:
        return self._keys[-1] if self._keys else None

    def top(self, n: int) -> list[tuple[float, float]]:
        """The best ``n`` (price, quantity), best first."""
        if n <= 0:
            return []
        return [(p, self[p]) for p in self._keys[: -n - 1 : -1]]

    def levels(self) -> list[tuple[float, float]]:
        return [(p, self[p]) for p in reversed(self._keys)]

    def prices(self) -> list[float]:
        """Every price, best LAST."""
        return list(self._keys)

    def _sum_from(self, start: int) -> float:
        # ascending price order, one addition after the other, as the C side adds them
        keys = self._keys[start:]
        total = 0.0
        for p in keys if not self.descending else reversed(keys):
            total += self[p]
        return total

    def sum_best(self, n: int) -> float:
        """The quantity of the best ``n`` levels."""
        return self._sum_from(max(len(self._keys) - max(n, 0), 0)) if n > 0 else 0.0

    def sum_within(self, edge: float) -> float:
        """The quantity priced at ``edge`` or better."""
        return self._sum_from(position(self._keys, edge, self.descending))


def py_touching(bids: PySide, asks: PySide) -> bool:
    """Both sides have levels and the best bid is at or above the best ask."""
    b = bids.best_price()
    a = asks.best_price()
    return b is not None and a is not None and b >= a


try:
    from shriven.book._levels import (  # type: ignore[import-not-found]
        Side,
        apply_side,
        pack_levels,
        touching,
    )

    ACCELERATED = True
except ImportError:  # the optional C extension was not built: the references do the work
    apply_side = py_apply_side
    pack_levels = py_pack_levels
    Side = PySide
    touching = py_touching
    ACCELERATED = False

Mapping.register(Side)

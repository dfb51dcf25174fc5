"""Book feature series sampled on a clock grid (pure): mid, spread, microprice, top-1 and top-N
imbalance, order-flow imbalance, log return and realised volatility.

Order-flow imbalance (Cont, Kukanov and Stoikov, 2014) sums over the book updates of an interval
``e = q_b 1[P_b >= P_b'] - q_b' 1[P_b <= P_b'] - q_a 1[P_a <= P_a'] + q_a' 1[P_a >= P_a']``
(primes: the previous update's best prices and sizes): positive when buying pressure grew.
Realised volatility is ``sqrt(sum r^2)`` over the last ``window`` log returns of the mid (not
annualised).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["FeatureRow", "FeatureSampler", "Top"]


class Top(NamedTuple):
    """A book's top: best bid/ask and sizes, and the summed sizes of the best N levels."""

    bid: float | None
    bid_qty: float
    ask: float | None
    ask_qty: float
    bid_depth: float  # best N levels
    ask_depth: float


class FeatureRow(NamedTuple):
    at_ns: int
    bid: float | None
    ask: float | None
    mid: float | None
    spread: float | None
    microprice: float | None
    imbalance: float | None  # top of book, in [-1, 1]
    imbalance_n: float | None  # best N levels
    ofi: float  # order-flow imbalance since the previous row
    log_return: float | None  # ln(mid / previous row's mid)
    realised_vol: float | None  # sqrt(sum r^2) over the last ``window`` returns
    updates: int  # book updates since the previous row


def _imb(b: float, a: float) -> float | None:
    total = b + a
    return (b - a) / total if total else None


def _ofi(prev: Top, cur: Top) -> float:
    e = 0.0
    if cur.bid is not None and prev.bid is not None:
        if cur.bid >= prev.bid:
            e += cur.bid_qty
        if cur.bid <= prev.bid:
            e -= prev.bid_qty
    if cur.ask is not None and prev.ask is not None:
        if cur.ask <= prev.ask:
            e -= cur.ask_qty
        if cur.ask >= prev.ask:
            e += prev.ask_qty
    return e


@dataclass(slots=True)
class FeatureSampler:
    """Feed book tops in time order (:meth:`update`); rows come out at ``start_ns`` and every
    ``every_ns`` after, each describing the book as it was at that instant (updates at the
    instant count). Updates before ``start_ns`` only give the book the first row starts from."""

    start_ns: int
    every_ns: int
    window: int = 60
    _next_ns: int = 0
    _top: Top | None = None
    _prev_seen: Top | None = None
    _ofi: float = 0.0
    _updates: int = 0
    _last_mid: float | None = None
    _squares: deque[float] = field(default_factory=deque)
    _sum_sq: float = 0.0

    def __post_init__(self) -> None:
        self._next_ns = self.start_ns

    def update(self, at_ns: int, top: Top) -> list[FeatureRow]:
        """Apply a book update received at ``at_ns``; returns the rows due before it."""
        rows = self.until(at_ns - 1)
        # updates before the start only set the book the first row starts from
        if self._prev_seen is not None and at_ns >= self.start_ns:
            self._ofi += _ofi(self._prev_seen, top)
        self._prev_seen = top
        self._top = top
        self._updates += at_ns >= self.start_ns
        return rows

    def until(self, at_ns: int) -> list[FeatureRow]:
        """The rows due at or before ``at_ns`` (call with the range end - 1 to finish)."""
        rows: list[FeatureRow] = []
        while self._next_ns <= at_ns:
            rows.append(self._row(self._next_ns))
            self._next_ns += self.every_ns
        return rows

    def _row(self, at_ns: int) -> FeatureRow:
        top = self._top
        ofi, updates = self._ofi, self._updates
        self._ofi = 0.0
        self._updates = 0
        if top is None or top.bid is None or top.ask is None:
            bid = top.bid if top is not None else None
            ask = top.ask if top is not None else None
            return FeatureRow(at_ns, bid, ask, None, None, None, None, None, ofi, None, None,
                              updates)  # fmt: skip
        mid = 0.5 * (top.bid + top.ask)
        qsum = top.bid_qty + top.ask_qty
        micro = (top.bid * top.ask_qty + top.ask * top.bid_qty) / qsum if qsum else mid
        ret = None
        if self._last_mid is not None and self._last_mid > 0 and mid > 0:
            ret = math.log(mid / self._last_mid)
            self._squares.append(ret * ret)
            self._sum_sq += ret * ret
            if len(self._squares) > self.window:
                self._sum_sq -= self._squares.popleft()
        self._last_mid = mid
        rv = math.sqrt(max(self._sum_sq, 0.0)) if self._squares else None
        return FeatureRow(
            at_ns,
            top.bid,
            top.ask,
            mid,
            top.ask - top.bid,
            micro,
            _imb(top.bid_qty, top.ask_qty),
            _imb(top.bid_depth, top.ask_depth),
            ofi,
            ret,
            rv,
            updates,
        )

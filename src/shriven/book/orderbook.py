"""An L2 order book: per side a :class:`shriven.book.levels.Side`, a read-only mapping price ->
quantity (floats) kept sorted, with the best level at one end.

``bids``/``asks`` read like dicts (``book.bids[price]``, ``in``, ``len``, ``get``, ``==`` with a
dict); everything that hands levels out returns them best first. ``bid_keys``/``ask_keys`` are
the prices best LAST, a copy, for readers of the old layout.

History, measured on benchmarks/book_update.py: a SortedDict cost about 480 ns per level change
through the keeper; a dict per side with a sorted price list beside it (DepthCache's dict, plus
the order kept) 280 ns in C, still two float objects and two dict operations per change while
order-book keeps its side in a C tree. The side is now C arrays of doubles (``_levels.Side``),
with the dict-and-list side kept as its reference (:class:`shriven.book.levels.PySide`,
:class:`PyOrderBook`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import ClassVar

from shriven.book.levels import PySide, Side

__all__ = ["Level", "OrderBook", "PyOrderBook", "best_prices"]

Level = tuple[float, float]  # (price, quantity)


def best_prices(book: OrderBook) -> tuple[float, float] | None:
    """(best bid price, best ask price), or None when either side is empty."""
    b = book.bids.best_price()
    a = book.asks.best_price()
    if b is not None and a is not None:
        return b, a
    return None


class OrderBook:
    """One instrument's book. ``update_id`` is the last venue update applied (0 = none)."""

    __slots__ = ("asks", "bids", "update_id")

    _side: ClassVar[type[Side]] = Side  # PyOrderBook: the pure-Python reference side

    def __init__(
        self,
        bids: Iterable[Level] = (),
        asks: Iterable[Level] = (),
        update_id: int = 0,
    ) -> None:
        self.bids: Side = self._side(False)
        self.asks: Side = self._side(True)
        self.update_id = update_id
        self.replace(bids, asks, update_id)

    # ------------------------------------------------------------ changing the book

    def apply(self, bids: Sequence[Level] | bytes, asks: Sequence[Level] | bytes) -> int:
        """Set each (price, quantity); quantity 0 removes the level. Returns levels processed.

        Prices and quantities are floats or decimal strings as Binance sends them (or a side
        :func:`shriven.book.levels.pack_levels` read). A side with a value that is not a finite,
        non-negative number raises ValueError and is left as it was (check with
        :func:`shriven.book.levels.levels_valid` first)."""
        return self.bids.apply(bids) + self.asks.apply(asks)

    def apply_strings(
        self, bids: Iterable[tuple[str, str]], asks: Iterable[tuple[str, str]]
    ) -> int:
        """:meth:`apply` for decimal strings as Binance sends them (the same call)."""
        return self.bids.apply(bids) + self.asks.apply(asks)

    def replace(
        self, bids: Iterable[Level], asks: Iterable[Level], update_id: int | None = None
    ) -> None:
        """Make the book exactly these levels: what :meth:`apply` of them to an empty book gives
        (a later repeat of a price wins; zero quantities are left out)."""
        self.bids.replace(bids)
        self.asks.replace(asks)
        if update_id is not None:
            self.update_id = update_id

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.update_id = 0

    @property
    def bid_keys(self) -> list[float]:
        """Every bid price, ascending (best last): a copy."""
        return self.bids.prices()

    @property
    def ask_keys(self) -> list[float]:
        """Every ask price, descending (best last): a copy."""
        return self.asks.prices()

    # ------------------------------------------------------------ reading the book

    def best_bid(self) -> Level | None:
        return self.bids.best()

    def best_ask(self) -> Level | None:
        return self.asks.best()

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """The best ``n`` bids and asks, best first."""
        return self.bids.top(n), self.asks.top(n)

    def levels(self) -> tuple[list[Level], list[Level]]:
        """Every level, best first."""
        return self.bids.levels(), self.asks.levels()

    def iter_bids(self) -> Iterator[Level]:
        """Bids best first."""
        return iter(self.bids.levels())

    def iter_asks(self) -> Iterator[Level]:
        """Asks best first."""
        return iter(self.asks.levels())

    def depth(self) -> tuple[int, int]:
        return len(self.bids), len(self.asks)

    def is_crossed(self) -> bool:
        """Best bid strictly above best ask: the book is wrong (a missed update)."""
        prices = best_prices(self)
        return prices is not None and prices[0] > prices[1]

    def is_locked(self) -> bool:
        """Best bid equal to best ask."""
        prices = best_prices(self)
        return prices is not None and prices[0] == prices[1]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OrderBook):
            return NotImplemented
        return self.bids == other.bids and self.asks == other.asks

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"OrderBook(update_id={self.update_id}, bids={len(self.bids)}, "
            f"asks={len(self.asks)}, best={self.best_bid()} / {self.best_ask()})"
        )


class PyOrderBook(OrderBook):
    """The same book on :class:`shriven.book.levels.PySide` sides: the reference the C sides are
    tested against (and what :class:`OrderBook` is when the C extension was not built)."""

    __slots__ = ()

    _side = PySide

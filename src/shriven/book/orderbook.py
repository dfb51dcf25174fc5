"""An L2 order book: per side a dict of price -> quantity (floats) and its prices, best last.

See :mod:`shriven.book.levels` for the layout: ``bids``/``asks`` are plain dicts, ``bid_keys``
is ascending and ``ask_keys`` descending, so the best price of either side is its list's last
item. Everything that hands levels out returns them best first.

The SortedDict this book used before cost about 480 ns per level change through the keeper
(its sorted key list is Python code, and every insert near the best ask shifted a sublist);
python-binance's DepthCache, a bare dict sorted when read, did it in 150 ns. A dict per side
makes updates (most changes) one dict store, and keeping the sorted prices in a flat list with
the best at the end makes inserts and deletes near the top a short move, while top-N and the
crossed check stay slices of that list instead of DepthCache's sort of the whole side.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from shriven.book.levels import apply_side

__all__ = ["Level", "OrderBook", "best_prices"]

Level = tuple[float, float]  # (price, quantity)


def best_prices(book: OrderBook) -> tuple[float, float] | None:
    """(best bid price, best ask price), or None when either side is empty."""
    bk = book.bid_keys
    ak = book.ask_keys
    if bk and ak:
        return bk[-1], ak[-1]
    return None


def _nonzero(levels: dict[float, float]) -> dict[float, float]:
    if 0 in levels.values():  # rare (Kite leaves zeros out; REST snapshots have none)
        return {p: q for p, q in levels.items() if q}
    return levels


def _best_first(side: dict[float, float], keys: list[float]) -> list[Level]:
    # zip/map keep the per-level work in C: a snapshot of a 1000-level side is one pass
    return list(zip(keys, map(side.__getitem__, keys), strict=True))


class OrderBook:
    """One instrument's book. ``update_id`` is the last venue update applied (0 = none)."""

    __slots__ = ("ask_keys", "asks", "bid_keys", "bids", "update_id")

    def __init__(
        self,
        bids: Iterable[Level] = (),
        asks: Iterable[Level] = (),
        update_id: int = 0,
    ) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.bid_keys: list[float] = []  # ascending: best bid last
        self.ask_keys: list[float] = []  # descending: best ask last
        self.update_id = update_id
        self.replace(bids, asks, update_id)

    # ------------------------------------------------------------ changing the book

    def apply(self, bids: Sequence[Level] | bytes, asks: Sequence[Level] | bytes) -> int:
        """Set each (price, quantity); quantity 0 removes the level. Returns levels processed.

        Prices and quantities are floats or decimal strings as Binance sends them (or a side
        :func:`shriven.book.levels.pack_levels` read). A side with a value that is not a finite,
        non-negative number raises ValueError and is left as it was (check with
        :func:`shriven.book.levels.levels_valid` first)."""
        return apply_side(self.bids, self.bid_keys, bids, False) + apply_side(
            self.asks, self.ask_keys, asks, True
        )

    def apply_strings(
        self, bids: Iterable[tuple[str, str]], asks: Iterable[tuple[str, str]]
    ) -> int:
        """:meth:`apply` for decimal strings as Binance sends them (the same call)."""
        return apply_side(self.bids, self.bid_keys, bids, False) + apply_side(
            self.asks, self.ask_keys, asks, True
        )

    def replace(
        self, bids: Iterable[Level], asks: Iterable[Level], update_id: int | None = None
    ) -> None:
        """Make the book exactly these levels: what :meth:`apply` of them to an empty book gives
        (a later repeat of a price wins; zero quantities are left out)."""
        b = _nonzero(dict(bids))
        a = _nonzero(dict(asks))
        self.bids = b
        self.asks = a
        self.bid_keys = sorted(b)
        self.ask_keys = sorted(a, reverse=True)
        if update_id is not None:
            self.update_id = update_id

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.bid_keys.clear()
        self.ask_keys.clear()
        self.update_id = 0

    # ------------------------------------------------------------ reading the book

    def best_bid(self) -> Level | None:
        keys = self.bid_keys
        return (keys[-1], self.bids[keys[-1]]) if keys else None

    def best_ask(self) -> Level | None:
        keys = self.ask_keys
        return (keys[-1], self.asks[keys[-1]]) if keys else None

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """The best ``n`` bids and asks, best first."""
        if n <= 0:
            return [], []
        stop = -n - 1
        return (
            _best_first(self.bids, self.bid_keys[:stop:-1]),
            _best_first(self.asks, self.ask_keys[:stop:-1]),
        )

    def levels(self) -> tuple[list[Level], list[Level]]:
        """Every level, best first."""
        return (
            _best_first(self.bids, self.bid_keys[::-1]),
            _best_first(self.asks, self.ask_keys[::-1]),
        )

    def iter_bids(self) -> Iterator[Level]:
        """Bids best first, without copying the book (do not change it while iterating)."""
        bids = self.bids
        return ((p, bids[p]) for p in reversed(self.bid_keys))

    def iter_asks(self) -> Iterator[Level]:
        """Asks best first, without copying the book (do not change it while iterating)."""
        asks = self.asks
        return ((p, asks[p]) for p in reversed(self.ask_keys))

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

"""An L2 order book: two SortedDicts of price -> quantity (floats).

Both sides are stored in ascending price order, so the best bid is the *last* bid key and the best
ask the *first* ask key. Everything that hands levels out returns them best first.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator, Sequence

from sortedcontainers import SortedDict

__all__ = ["Level", "OrderBook", "best_prices"]

Level = tuple[float, float]  # (price, quantity)

# SortedList's sublist size. Its default (1000, splitting at 2000) makes every insert or delete
# near the best ask shift up to 2000 pointers, because asks are ascending and the best is first.
SUBLIST_LOAD = 128

# dict's own methods on the SortedDict, bypassing its Python-level overrides. setdefault and pop
# are used for insert and delete because method calls are cheaper than the slot wrappers
# dict.__setitem__ / __delitem__ (about 30 ns each here).
_dict_add = dict.setdefault  # only called for prices not in the book
_dict_pop = dict.pop
_dict_update = dict.update


def _apply_side(side: SortedDict, levels: Sequence[tuple[float, float]]) -> int:
    """Hot path: set each (price, qty) on one side; qty 0 removes. Returns levels processed.

    Most changes only alter the quantity of a price already in the book: those are collected
    and written into the underlying dict in one ``dict.update`` call. Inserts and deletes also
    maintain SortedDict's sorted key list (a SortedList: sublists ``_lists`` with their maxima
    ``_maxes``); the common case is done inline here with C-level ``bisect``/``insort``, and
    anything that needs SortedList's rebalancing (a sublist growing past twice the load factor
    or shrinking below half of it, or a positional index to maintain) goes through SortedList's
    own methods. Going through ``SortedDict.__setitem__`` / ``__delitem__`` instead costs about
    twice as much per change. ``tests/book`` checks every result against a naive book and the
    SortedDict's own invariant check.
    """
    keys = side._list
    lists = keys._lists
    maxes = keys._maxes
    grow_limit = keys._load << 1
    keep_min = (keys._load >> 1) + 1  # a sublist longer than this loses one without a merge
    # SortedList keeps a positional index only after positional reads; adds and removes never
    # build one, so if there is none now there will be none during this batch.
    fast = not keys._index
    pending: list[tuple[float, float]] = []
    grown = 0  # net keys added on the fast paths; SortedList's own methods count theirs
    try:
        for level in levels:
            price, qty = level
            if price in side:
                if qty:
                    pending.append(level)  # the caller's tuple: building a new one costs more
                    continue
                if pending:  # an earlier update of this price must land before it is removed
                    _dict_update(side, pending)
                    pending.clear()
                _dict_pop(side, price)
                pos = bisect_left(maxes, price)
                sub = lists[pos]
                # SortedList merges a short sublist into its neighbour; a lone one just shrinks
                if fast and (len(sub) > keep_min or (len(sub) > 1 and len(lists) == 1)):
                    del sub[bisect_left(sub, price)]
                    maxes[pos] = sub[-1]
                    grown -= 1
                else:
                    keys.remove(price)
            elif qty:
                _dict_add(side, price, qty)
                if fast and maxes:
                    pos = bisect_right(maxes, price)
                    if pos == len(maxes):
                        pos -= 1
                        sub = lists[pos]
                        sub.append(price)
                        maxes[pos] = price
                    else:
                        sub = lists[pos]
                        insort(sub, price)
                    grown += 1
                    if len(sub) > grow_limit:
                        keys._expand(pos)
                else:
                    keys.add(price)
    finally:
        keys._len += grown
        if pending:
            _dict_update(side, pending)
    return len(levels)


def _nonzero(levels: dict[float, float]) -> dict[float, float]:
    if 0 in levels.values():  # rare (Kite leaves zeros out; REST snapshots have none)
        return {p: q for p, q in levels.items() if q}
    return levels


def _fill_side(side: SortedDict, levels: dict[float, float]) -> None:
    """Make ``side`` exactly ``levels``: what ``clear()`` then ``update(levels)`` leave, built
    directly (SortedDict's own clear and update are several Python calls each, which is most of
    the cost of replacing a Kite book's five levels on every full tick)."""
    dict.clear(side)
    _dict_update(side, levels)
    keys = side._list
    lists = keys._lists
    maxes = keys._maxes
    del lists[:]
    del maxes[:]
    del keys._index[:]
    keys._offset = 0
    ordered = sorted(levels)
    load = keys._load
    if len(ordered) <= load:
        if ordered:
            lists.append(ordered)
            maxes.append(ordered[-1])
    else:
        lists.extend(ordered[i : i + load] for i in range(0, len(ordered), load))
        maxes.extend(sub[-1] for sub in lists)
    keys._len = len(ordered)


def best_prices(book: OrderBook) -> tuple[float, float] | None:
    """(best bid price, best ask price), or None when either side is empty. Read from the
    SortedLists' sublists directly: SortedList indexing ([-1]) is Python code; this is not.
    The one reader of sortedcontainers' internals outside this module's hot paths."""
    bids = book.bids
    asks = book.asks
    if bids and asks:
        return bids._list._lists[-1][-1], asks._list._lists[0][0]
    return None


def _to_float_levels(levels: Iterable[tuple[object, object]]) -> list[Level]:
    return [(float(p), float(q)) for p, q in levels]  # type: ignore[arg-type]


class OrderBook:
    """One instrument's book. ``update_id`` is the last venue update applied (0 = none)."""

    __slots__ = ("asks", "bids", "update_id")

    def __init__(
        self,
        bids: Iterable[Level] = (),
        asks: Iterable[Level] = (),
        update_id: int = 0,
    ) -> None:
        self.bids: SortedDict = SortedDict()
        self.asks: SortedDict = SortedDict()
        self.bids._reset(SUBLIST_LOAD)
        self.asks._reset(SUBLIST_LOAD)
        self.update_id = update_id
        self.replace(bids, asks, update_id)

    # ------------------------------------------------------------ changing the book

    def apply(self, bids: Sequence[Level], asks: Sequence[Level]) -> int:
        """Set each (price, quantity); quantity 0 removes the level. Returns levels processed.

        Prices and quantities must be floats (use :meth:`apply_strings` for venue strings)."""
        return _apply_side(self.bids, bids) + _apply_side(self.asks, asks)

    def apply_strings(
        self, bids: Iterable[tuple[str, str]], asks: Iterable[tuple[str, str]]
    ) -> int:
        """:meth:`apply` for decimal strings as Binance sends them."""
        return _apply_side(self.bids, _to_float_levels(bids)) + _apply_side(
            self.asks, _to_float_levels(asks)
        )

    def replace(
        self, bids: Iterable[Level], asks: Iterable[Level], update_id: int | None = None
    ) -> None:
        """Make the book exactly these levels: what :meth:`apply` of them to an empty book gives
        (a later repeat of a price wins; zero quantities are left out)."""
        _fill_side(self.bids, _nonzero(dict(bids)))
        _fill_side(self.asks, _nonzero(dict(asks)))
        if update_id is not None:
            self.update_id = update_id

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.update_id = 0

    # ------------------------------------------------------------ reading the book

    def best_bid(self) -> Level | None:
        return self.bids.peekitem(-1) if self.bids else None

    def best_ask(self) -> Level | None:
        return self.asks.peekitem(0) if self.asks else None

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """The best ``n`` bids and asks, best first."""
        bids = self.bids
        asks = self.asks
        bid_keys = bids.islice(max(len(bids) - n, 0), None, reverse=True)
        ask_keys = asks.islice(0, n)
        return [(p, bids[p]) for p in bid_keys], [(p, asks[p]) for p in ask_keys]

    def levels(self) -> tuple[list[Level], list[Level]]:
        """Every level, best first."""
        bids = self.bids
        asks = self.asks
        return [(p, bids[p]) for p in reversed(bids)], list(asks.items())

    def iter_bids(self) -> Iterator[Level]:
        """Bids best first, without copying the book (do not change it while iterating)."""
        bids = self.bids
        return ((p, bids[p]) for p in reversed(bids))

    def iter_asks(self) -> Iterator[Level]:
        """Asks best first, without copying the book (do not change it while iterating)."""
        return iter(self.asks.items())

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
        return dict(self.bids) == dict(other.bids) and dict(self.asks) == dict(other.asks)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"OrderBook(update_id={self.update_id}, bids={len(self.bids)}, "
            f"asks={len(self.asks)}, best={self.best_bid()} / {self.best_ask()})"
        )

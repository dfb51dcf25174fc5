"""Books for every instrument, kept from the records in the order they were recorded.

The pipeline feeds live records through a :class:`BookKeeper`; replay feeds the same records from
the WAL through another one. Both are pure and deterministic, so the books they hold are equal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shriven.book.depth_sync import (
    APPLY,
    GAP,
    STALE,
    DepthSync,
    FuturesDepthSync,
    SnapshotResult,
)
from shriven.book.levels import levels_valid, pack_levels, touching
from shriven.book.orderbook import OrderBook, best_prices
from shriven.events import (
    FUTURES_VENUES,
    KITE_SEGMENT_INDICES,
    BinanceDepth,
    BinanceDepthSnapshot,
    BinanceFuturesDepth,
    BinanceFuturesDepthSnapshot,
    BookSnapshot,
    KiteTick,
    Record,
    SeqCounter,
    Status,
    StatusKind,
    depth_levels,
    kite_depth_floats,
    kite_price_divisor,
)

__all__ = ["BookKeeper", "KeeperStats"]


@dataclass(slots=True)
class KeeperStats:
    applied: int = 0  # diffs applied to a book
    levels: int = 0  # level changes applied
    stale: int = 0  # diffs already contained in the book (u <= update id), ignored
    buffered: int = 0  # diffs held while a book waited for its snapshot
    gaps: int = 0  # out-of-sequence diffs (or gap markers) that invalidated a book
    snapshots: int = 0  # Binance snapshots that (re)started a book
    stale_snapshots: int = 0  # snapshots older than the buffered diffs, not used
    kite_depth: int = 0  # Kite full-mode ticks that replaced a book
    crossed: int = 0  # updates after which a book's best bid was above its best ask
    locked: int = 0  # updates after which best bid equalled best ask
    ignored: int = 0  # records that do not change a book
    # Records an older recorder stored that today's schema refuses (a price "abc", "NaN", "-1"):
    # skipped, so a book is never built from them and applying them never raises.
    rejected: int = 0


def _kite_side(levels: tuple[tuple[int, int, int], ...], divisor: int) -> list[tuple[float, float]]:
    return [(price / divisor, float(qty)) for price, qty, _orders in levels if qty and price]


def _floats(levels: tuple[tuple[str, str], ...]) -> list[tuple[float, float]]:
    return [(float(p), float(q)) for p, q in levels]


class BookKeeper:
    """One :class:`OrderBook` per ``events.instrument_key`` (``binance:BTCUSDT``, ``kite:256265``).

    A Binance book is valid from its snapshot on, while its diffs stay in sequence (see
    :class:`shriven.feeds.binance.DepthSync`); after a gap it is invalid until the next snapshot.
    A Kite book is the five levels of the latest full-mode tick.
    """

    def __init__(self) -> None:
        self.books: dict[str, OrderBook] = {}
        self.syncs: dict[str, DepthSync[BinanceDepth] | FuturesDepthSync[BinanceFuturesDepth]] = {}
        self.stats = KeeperStats()
        self.crossed_now: set[str] = set()  # keys whose book is crossed or locked right now
        self._snapshot_seq = SeqCounter()
        # symbol -> (key, book, sync): the per-diff lookup, one dict get instead of a key built
        # and two looked up (books are only ever added, so an entry never goes stale)
        self._binance_of: dict[str, tuple[str, OrderBook, DepthSync[BinanceDepth]]] = {}

    # ------------------------------------------------------------ reading

    def book(self, key: str) -> OrderBook | None:
        return self.books.get(key)

    def is_valid(self, key: str) -> bool:
        """True when the book for ``key`` exists and is in sync with the venue."""
        if key not in self.books:
            return False
        sync = self.syncs.get(key)
        return sync is None or sync.live

    def out_of_sync(self) -> list[str]:
        """Keys of Binance books waiting for a snapshot (after a gap, or before the first)."""
        return [k for k, sync in self.syncs.items() if not sync.live]

    def valid_books(self) -> dict[str, OrderBook]:
        return {k: b for k, b in self.books.items() if self.is_valid(k)}

    def snapshots(
        self, recv_ns: int, seq_counter: SeqCounter | None = None, depth: int | None = None
    ) -> list[BookSnapshot]:
        """A :class:`BookSnapshot` of every valid book (all levels, or the best ``depth``)."""
        counter = seq_counter if seq_counter is not None else self._snapshot_seq
        out: list[BookSnapshot] = []
        for key, book in self.books.items():
            if not self.is_valid(key):
                continue
            venue, _, instrument = key.partition(":")
            if depth is None:
                bids, asks = book.levels()
            else:
                bids, asks = book.top(depth)
            out.append(
                BookSnapshot(
                    recv_ns,
                    counter.next(),
                    venue,
                    instrument,
                    book.update_id,
                    tuple(bids),
                    tuple(asks),
                )
            )
        return out

    def restore(self, snapshot: BookSnapshot) -> None:
        """Start the snapshot's book from it, in sync at its update id (replay seeding a book
        from a saved :class:`BookSnapshot` instead of from the start of the records)."""
        key = f"{snapshot.venue}:{snapshot.instrument}"
        if snapshot.venue == "binance":
            key, book, sync = self._binance(snapshot.instrument)
            sync.restore(snapshot.update_id)
        elif snapshot.venue in FUTURES_VENUES:
            key, book, futures_sync = self._futures(snapshot.venue, snapshot.instrument)
            futures_sync.restore(snapshot.update_id)
        else:
            book = self.books.get(key)
            if book is None:
                book = self.books[key] = OrderBook()
        book.replace(snapshot.bids, snapshot.asks, snapshot.update_id)
        self._check_crossed(key, book)

    # ------------------------------------------------------------ applying records

    def apply(self, record: Record) -> None:
        """Update the books from one record of any type."""
        t = type(record)
        if t is BinanceDepth:
            self._depth(record)  # type: ignore[arg-type]
        elif t is BinanceDepthSnapshot:
            self._snapshot(record)  # type: ignore[arg-type]
        elif t is KiteTick:
            self._kite(record)  # type: ignore[arg-type]
        elif t is Status:
            self._status(record)  # type: ignore[arg-type]
        elif t is BinanceFuturesDepth:
            self._futures_depth(record)  # type: ignore[arg-type]
        elif t is BinanceFuturesDepthSnapshot:
            self._futures_snapshot(record)  # type: ignore[arg-type]
        else:  # trades, tickers, mark prices, BookSnapshot...: no book change
            self.stats.ignored += 1

    def apply_all(self, records: list[Record]) -> None:
        for r in records:
            self.apply(r)

    def _binance(self, symbol: str) -> tuple[str, OrderBook, DepthSync[BinanceDepth]]:
        entry = self._binance_of.get(symbol)
        if entry is None:
            key = "binance:" + symbol
            book = self.books.get(key)
            if book is None:
                book = self.books[key] = OrderBook()
                self.syncs[key] = DepthSync()
            entry = self._binance_of[symbol] = (key, book, self.syncs[key])
        return entry

    def _depth(self, d: BinanceDepth) -> None:
        stats = self.stats
        # Read (and checked) before the sequence rules see it: a diff no book could take never
        # moves one on. The doubles read here are what the book applies: the text is read once.
        # A live diff's levels were read (and checked) by the parser already.
        lv = depth_levels(d)
        if lv is not None:
            bids = lv.bid_values
            asks = lv.ask_values
        else:
            bids = pack_levels(d.bids)
            asks = pack_levels(d.asks)
        if bids is None or asks is None:
            stats.rejected += 1
            return
        entry = self._binance_of.get(d.symbol)
        key, book, sync = entry if entry is not None else self._binance(d.symbol)
        outcome = sync.on_diff(d.first_update_id, d.last_update_id, d)
        if outcome == APPLY:
            # _apply_diff's work, inline: this is every live diff, and its frame was ~4% of one
            bids_side = book.bids
            asks_side = book.asks
            stats.levels += bids_side.apply(bids) + asks_side.apply(asks)
            stats.applied += 1
            book.update_id = d.last_update_id
            if touching(bids_side, asks_side):
                self._check_crossed(key, book)  # crossed or locked: counted there
            elif self.crossed_now:
                self.crossed_now.discard(key)
        else:
            self._not_applied(outcome, key)

    def _not_applied(self, outcome: int, key: str) -> None:
        """Count a diff the synchroniser did not let through (spot and futures alike)."""
        stats = self.stats
        if outcome == STALE:
            stats.stale += 1
        elif outcome == GAP:
            stats.gaps += 1
            stats.buffered += 1
            self.crossed_now.discard(key)
        else:
            stats.buffered += 1

    def _apply_diff(
        self,
        key: str,
        book: OrderBook,
        d: BinanceDepth,
        bids: bytes | None = None,
        asks: bytes | None = None,
    ) -> None:
        stats = self.stats
        if bids is None or asks is None:  # a buffered diff, checked when it arrived
            lv = depth_levels(d) if type(d) is BinanceDepth else None
            if lv is not None:
                stats.levels += book.apply(lv.bid_values, lv.ask_values)
            else:
                stats.levels += book.apply(d.bids, d.asks)
        else:
            stats.levels += book.bids.apply(bids) + book.asks.apply(asks)
        stats.applied += 1
        book.update_id = d.last_update_id
        if touching(book.bids, book.asks):
            self._check_crossed(key, book)  # crossed or locked: counted there
        elif self.crossed_now:
            self.crossed_now.discard(key)

    def _snapshot(self, s: BinanceDepthSnapshot) -> None:
        self._rest_snapshot(s, lambda: self._binance(s.symbol))

    def _start_book(
        self,
        key: str,
        book: OrderBook,
        result: SnapshotResult[BinanceDepth] | SnapshotResult[BinanceFuturesDepth],
        bids: list[tuple[float, float]],
        asks: list[tuple[float, float]],
        last_update_id: int,
    ) -> None:
        """A venue snapshot offered to a book's synchroniser: restart the book from it when
        usable, then apply the buffered diffs the synchroniser released."""
        stats = self.stats
        stats.stale += result.dropped
        if not result.usable:
            stats.stale_snapshots += 1
            return
        stats.snapshots += 1
        book.replace(bids, asks, last_update_id)
        self._check_crossed(key, book)
        for d in result.apply:
            self._apply_diff(key, book, d)  # type: ignore[arg-type]
        if result.gap:
            stats.gaps += 1
            self.crossed_now.discard(key)

    # ------------------------------------------------------------ futures (pu-chained) books

    def _futures(
        self, venue: str, symbol: str
    ) -> tuple[str, OrderBook, FuturesDepthSync[BinanceFuturesDepth]]:
        key = f"{venue}:{symbol}"
        book = self.books.get(key)
        if book is None:
            book = self.books[key] = OrderBook()
            self.syncs[key] = FuturesDepthSync()
        return key, book, self.syncs[key]  # type: ignore[return-value]

    def _futures_depth(self, d: BinanceFuturesDepth) -> None:
        bids = pack_levels(d.bids)
        asks = pack_levels(d.asks)
        stats = self.stats
        if bids is None or asks is None:
            stats.rejected += 1
            return
        key, book, sync = self._futures(d.venue, d.symbol)
        outcome = sync.on_diff(d.first_update_id, d.last_update_id, d.prev_update_id, d)
        if outcome == APPLY:
            self._apply_diff(key, book, d, bids, asks)  # type: ignore[arg-type]
        else:
            self._not_applied(outcome, key)

    def _futures_snapshot(self, s: BinanceFuturesDepthSnapshot) -> None:
        self._rest_snapshot(s, lambda: self._futures(s.venue, s.symbol))

    def _rest_snapshot(
        self,
        s: BinanceDepthSnapshot | BinanceFuturesDepthSnapshot,
        find: Callable[[], tuple[str, OrderBook, Any]],
    ) -> None:
        """A REST depth answer (spot or futures) restarts its book; ``find`` looks the book up,
        only once the levels are known to be valid."""
        if not (levels_valid(s.bids) and levels_valid(s.asks)):
            self.stats.rejected += 1
            return
        key, book, sync = find()
        self._start_book(
            key,
            book,
            sync.on_snapshot(s.last_update_id),
            _floats(s.bids),
            _floats(s.asks),
            s.last_update_id,
        )

    def _kite(self, tick: KiteTick) -> None:
        # Index packets say "full" but carry no depth: an index has no book.
        if tick.mode != "full" or tick.instrument_token & 0xFF == KITE_SEGMENT_INDICES:
            self.stats.ignored += 1
            return
        key = f"kite:{tick.instrument_token}"
        book = self.books.get(key)
        if book is None:
            book = self.books[key] = OrderBook()
        div = kite_price_divisor(tick.instrument_token)
        sides = kite_depth_floats(tick, div)  # a held tick: read from its packet, in C
        if sides is None:
            book.replace(_kite_side(tick.bids, div), _kite_side(tick.asks, div), tick.seq)
        else:
            book.replace(sides[0], sides[1], tick.seq)
        self.stats.kite_depth += 1
        self._check_crossed(key, book)

    def _status(self, s: Status) -> None:
        # A gap the feed saw without a diff showing it (e.g. a dropped connection): the book is
        # invalid until the next snapshot. The feed drives its own DepthSync the same way.
        key = f"{s.venue}:{s.instrument}"
        sync = self.syncs.get(key)
        if s.kind == StatusKind.GAP and sync is not None and sync.invalidate():
            self.stats.gaps += 1
            self.crossed_now.discard(key)
        else:
            self.stats.ignored += 1

    def _check_crossed(self, key: str, book: OrderBook) -> None:
        prices = best_prices(book)
        if prices is not None:
            bid, ask = prices
            if bid >= ask:
                if bid > ask:
                    self.stats.crossed += 1
                else:
                    self.stats.locked += 1
                self.crossed_now.add(key)
                return
        self.crossed_now.discard(key)

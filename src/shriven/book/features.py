"""Numbers derived from a book: spread, mid, microprice, imbalance, depth near the mid.

Values that need a side the book does not have are ``None``.
"""

from __future__ import annotations

from typing import NamedTuple

from shriven.book.levels import position
from shriven.book.orderbook import OrderBook

__all__ = ["BookFeatures", "features"]


class BookFeatures(NamedTuple):
    best_bid: float | None
    best_bid_qty: float | None
    best_ask: float | None
    best_ask_qty: float | None
    spread: float | None  # ask - bid (negative when crossed)
    mid: float | None
    # Mid pulled toward the thinner side: (bid * ask_qty + ask * bid_qty) / (bid_qty + ask_qty)
    microprice: float | None
    imbalance: float | None  # top of book: (bid_qty - ask_qty) / (bid_qty + ask_qty), in [-1, 1]
    imbalance_n: float | None  # the same over the best ``n`` levels of each side
    bid_depth_band: float | None  # total bid quantity priced within ``band_bps`` of the mid
    ask_depth_band: float | None  # total ask quantity priced within ``band_bps`` of the mid
    crossed: bool
    locked: bool


def _imbalance(b: float, a: float) -> float | None:
    total = b + a
    return (b - a) / total if total else None


def features(book: OrderBook, n: int = 5, band_bps: float = 10.0) -> BookFeatures:
    """Features of ``book``; ``n`` levels for ``imbalance_n``, ``band_bps`` (1 bp = 0.01%) for
    the depth band around the mid."""
    bids = book.bids
    asks = book.asks
    bk = book.bid_keys  # ascending: best last
    ak = book.ask_keys  # descending: best last
    bid = bid_qty = ask = ask_qty = None
    if bk:
        bid = bk[-1]
        bid_qty = bids[bid]
    if ak:
        ask = ak[-1]
        ask_qty = asks[ask]

    # map over the dict's own __getitem__ keeps the summing loops in C; both sides are summed
    # in ascending price order, as they always were, so the float sums stay bit for bit
    bq = bids.__getitem__
    aq = asks.__getitem__
    bids_n = sum(map(bq, bk[max(len(bk) - n, 0) :]))
    asks_n = sum(map(aq, reversed(ak[max(len(ak) - n, 0) :])))

    if bid is None or ask is None:
        return BookFeatures(
            bid, bid_qty, ask, ask_qty, None, None, None, None,
            _imbalance(bids_n, asks_n) if (bids or asks) else None,
            None, None, False, False,
        )  # fmt: skip

    mid = (bid + ask) / 2.0
    qsum = bid_qty + ask_qty
    micro = (bid * ask_qty + ask * bid_qty) / qsum if qsum else mid
    band = mid * band_bps / 10_000.0
    # the prices inside the band are each list's tail, from its first price not before the edge
    bid_band = sum(map(bq, bk[position(bk, mid - band, False) :]))
    ask_band = sum(map(aq, reversed(ak[position(ak, mid + band, True) :])))
    return BookFeatures(
        bid,
        bid_qty,
        ask,
        ask_qty,
        ask - bid,
        mid,
        micro,
        _imbalance(bid_qty, ask_qty),
        _imbalance(bids_n, asks_n),
        bid_band,
        ask_band,
        bid > ask,
        bid == ask,
    )

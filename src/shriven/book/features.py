"""Numbers derived from a book: spread, mid, microprice, imbalance, depth near the mid.

Values that need a side the book does not have are ``None``.
"""

from __future__ import annotations

from typing import NamedTuple

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
    bid = bid_qty = ask = ask_qty = None
    best = bids.best()
    if best is not None:
        bid, bid_qty = best
    best = asks.best()
    if best is not None:
        ask, ask_qty = best

    # The sums run in the side (in C): each adds its quantities in ascending price order, as
    # they always were added, so the values stay bit for bit. The 10 bp band usually covers the
    # whole side: summed in Python through the dict it was ~100 us of a top-20 read.
    bids_n = bids.sum_best(n)
    asks_n = asks.sum_best(n)

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
        bids.sum_within(mid - band),
        asks.sum_within(mid + band),
        bid > ask,
        bid == ask,
    )

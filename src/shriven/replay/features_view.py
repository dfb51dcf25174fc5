"""Printing a reconstructed book with its features, for `shriven replay book`."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from shriven.book import features
from shriven.replay.reconstruct import BookAt
from shriven.replay.rows import book_price, book_quantity, price_decimals
from shriven.replay.times import format_ns, zone_label

__all__ = ["render_book"]


def _fixed(x: float | None, decimals: int) -> str:
    return "-" if x is None else f"{x:.{decimals}f}"


def render_book(
    result: BookAt,
    depth: int,
    zone: ZoneInfo,
    places: tuple[int | None, int | None] = (None, None),
) -> str:
    """The book as text; ``places``: decimals of prices and quantities where the contract's
    tick and lot size are known (``BookResult.places``), else the venue's own."""
    book = result.book
    venue, _, instrument = result.key.partition(":")
    price_places, qty_places = places
    decimals = price_decimals(venue, instrument) if price_places is None else price_places
    # mid and microprice can fall between ticks: one decimal more than the tick's
    between = decimals + 1 if venue == "kite" or price_places is not None else decimals

    def price(x: float) -> str:
        if price_places is not None:
            return f"{x:.{price_places}f}"
        return book_price(venue, instrument, x)

    def qty(x: float) -> str:
        if qty_places is not None:
            return f"{x:.{qty_places}f}"
        return book_quantity(venue, x)

    lines = [
        f"{result.key} at {format_ns(result.at_ns, zone)}; "
        f"times in {zone_label(zone, result.at_ns)}",
    ]
    if result.snapshot is not None:
        lines.append(
            f"from the snapshot at {format_ns(result.snapshot.recv_ns, zone)} "
            f"(update {result.snapshot.update_id}) + {result.changes} recorded changes"
        )
    else:
        lines.append(
            f"no snapshot before it: rebuilt from the start of the store "
            f"({result.changes} recorded changes)"
        )
    state = "in sync" if result.valid else "NOT in sync (a gap with no resync before the instant)"
    lines.append(f"update id {book.update_id}; {state}")
    bids, asks = book.top(depth)
    lines.append(f"{'bid qty':>16} {'bid':>14} | {'ask':<14} ask qty")
    for i in range(max(len(bids), len(asks))):
        b = bids[i] if i < len(bids) else None
        a = asks[i] if i < len(asks) else None
        left = f"{qty(b[1]):>16} {price(b[0]):>14}" if b else " " * 31
        right = f"{price(a[0]):<14} {qty(a[1]):<16}" if a else ""
        lines.append(f"{left} | {right}".rstrip())
    f = features(book, n=depth)
    lines.append(
        f"spread {_fixed(f.spread, decimals)}  mid {_fixed(f.mid, between)}  "
        f"microprice {_fixed(f.microprice, between)}  "
        f"imbalance {_fixed(f.imbalance, 4)} (top), {_fixed(f.imbalance_n, 4)} (top {depth} levels)"
    )
    if f.crossed or f.locked:
        lines.append("the book is " + ("CROSSED" if f.crossed else "locked"))
    return "\n".join(lines)

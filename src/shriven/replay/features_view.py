"""Printing a reconstructed book with its features, for `shriven replay book`."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from shriven.book import features
from shriven.events import kite_price_divisor
from shriven.replay.reconstruct import BookAt
from shriven.replay.times import format_ns, zone_label

__all__ = ["render_book"]


def _price_format(key: str) -> str:
    venue, _, instrument = key.partition(":")
    if venue == "kite" and instrument.isdigit():
        scale = len(str(kite_price_divisor(int(instrument)))) - 1
        return f".{scale}f"
    return ""


def _num(x: float | None, spec: str = "") -> str:
    """Book values are floats: show them rounded past float noise (8 decimals, Binance's)."""
    if x is None:
        return "-"
    return format(x, spec) if spec else repr(round(x, 8))


def render_book(result: BookAt, depth: int, zone: ZoneInfo) -> str:
    book = result.book
    pf = _price_format(result.key)
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
        left = f"{_num(b[1]):>16} {_num(b[0], pf):>14}" if b else " " * 31
        right = f"{_num(a[0], pf):<14} {_num(a[1]):<16}" if a else ""
        lines.append(f"{left} | {right}".rstrip())
    f = features(book, n=depth)
    lines.append(
        f"spread {_num(f.spread, pf)}  mid {_num(f.mid)}  microprice {_num(f.microprice)}  "
        f"imbalance {_num(f.imbalance)} (top), {_num(f.imbalance_n)} (top {depth} levels)"
    )
    if f.crossed or f.locked:
        lines.append("the book is " + ("CROSSED" if f.crossed else "locked"))
    return "\n".join(lines)

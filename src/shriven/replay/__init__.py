"""Reading recorded data back: time ranges in a deterministic order, exports, and order books
rebuilt at any instant from snapshots plus recorded changes.

``reconstruct_lob_from_ticks(symbol, start, end)`` returns the book at ``end``;
``iter_lob_states(symbol, start, end)`` yields every state in between (see reconstruct.py).
"""

from shriven.replay.books import BookState, VerifyReport, verify_books
from shriven.replay.reconstruct import (
    BookAt,
    book_at,
    book_states,
    iter_lob_states,
    reconstruct_lob_from_ticks,
)
from shriven.replay.select import Selection, parse_kinds, resolve_symbols
from shriven.replay.store import StoreReader
from shriven.replay.times import format_ns, load_zone, zone_label

__all__ = [
    "BookAt",
    "BookState",
    "Selection",
    "StoreReader",
    "VerifyReport",
    "book_at",
    "book_states",
    "format_ns",
    "iter_lob_states",
    "load_zone",
    "parse_kinds",
    "reconstruct_lob_from_ticks",
    "resolve_symbols",
    "verify_books",
    "zone_label",
]

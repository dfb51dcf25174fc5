"""The Binance contracts a store recorded, kept beside it in ``binance_instruments.json``.

Each venue's symbols as ``exchangeInfo`` listed them when recording started: contract type
(PERPETUAL, CURRENT_QUARTER, NEXT_QUARTER...), pair, delivery date, tick size and lot size, so
replay can name and scale a contract long after it was delivered and delisted. The file only
grows (a symbol's latest listing wins); written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from shriven.files import atomic_write

if TYPE_CHECKING:
    from shriven.feeds.binance.streams import Listing

__all__ = ["BINANCE_RECORDED_FILE", "load_listings", "record_listings"]

BINANCE_RECORDED_FILE = "binance_instruments.json"
_FORMAT = "shriven-binance-instruments"


def load_listings(data_dir: Path) -> dict[str, dict[str, Listing]]:
    """venue -> symbol -> listing (empty when the store has none or the file is unreadable)."""
    # the listing type is imported once there is a table to read: `replay book` asks every
    # store, and most have none
    try:
        doc = json.loads((Path(data_dir) / BINANCE_RECORDED_FILE).read_text(encoding="utf-8"))
        if doc.get("format") != _FORMAT:
            return {}
        from shriven.feeds.binance.streams import Listing

        return {
            venue: {sym: Listing(**row) for sym, row in rows.items()}
            for venue, rows in doc["venues"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def record_listings(data_dir: Path, venue: str, listings: Iterable[Listing]) -> int:
    """Add ``listings`` of ``venue`` to the store's table; returns how many changed."""
    known = load_listings(data_dir)
    rows = known.setdefault(venue, {})
    changed = 0
    for listing in listings:
        if rows.get(listing.symbol) != listing:
            rows[listing.symbol] = listing
            changed += 1
    if not changed:
        return 0
    doc = {
        "format": _FORMAT,
        "venues": {
            v: {s: asdict(rows[s]) for s in sorted(rows)} for v, rows in sorted(known.items())
        },
    }
    atomic_write(
        Path(data_dir) / BINANCE_RECORDED_FILE, json.dumps(doc, indent=1).encode(), mode=0o644
    )
    return changed

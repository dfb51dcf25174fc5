"""The instruments a store recorded, kept beside it as ``<data_dir>/instruments.json``.

Kite's instrument dump lists only live contracts: a month after recording, the options and
futures in a store are gone from it, and replay could no longer tell that token 9670658 was
NIFTY26D0125000CE or that it belongs to "NIFTY 50". The daemon therefore adds every instrument
it subscribes (spot, futures, options; rows as in the dump) to this file, which only grows, and
replay looks names up here as well as in the cache. Written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from shriven.feeds.kite.instruments import COLUMNS, Instrument
from shriven.files import atomic_write

__all__ = ["RECORDED_FILE", "load_recorded", "record_instruments"]

RECORDED_FILE = "instruments.json"
_FORMAT = "shriven-recorded-instruments"


def load_recorded(data_dir: Path) -> list[Instrument]:
    """The store's recorded instruments (empty when it has none or the file is unreadable)."""
    try:
        doc = json.loads((Path(data_dir) / RECORDED_FILE).read_text(encoding="utf-8"))
        if doc.get("format") != _FORMAT:
            return []
        rows = []
        for values in doc["rows"]:
            row = dict(zip(doc["columns"], values, strict=True))
            row["expiry"] = date.fromisoformat(row["expiry"]) if row["expiry"] else None
            rows.append(Instrument(**row))
        return rows
    except (OSError, ValueError, KeyError, TypeError):
        return []


def record_instruments(data_dir: Path, instruments: Iterable[Instrument]) -> int:
    """Add ``instruments`` to the store's table; returns how many were new."""
    known = {i.instrument_token: i for i in load_recorded(data_dir)}
    before = len(known)
    for i in instruments:
        known[i.instrument_token] = i
    if len(known) == before:
        return 0
    rows = [
        [v.isoformat() if isinstance(v, date) else v for v in i]
        for i in sorted(known.values(), key=lambda i: i.instrument_token)
    ]
    doc = {"format": _FORMAT, "columns": list(COLUMNS), "rows": rows}
    atomic_write(Path(data_dir) / RECORDED_FILE, json.dumps(doc).encode(), mode=0o644)
    return len(known) - before

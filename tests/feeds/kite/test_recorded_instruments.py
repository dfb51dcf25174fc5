"""The store's own instruments table: it only grows, survives a reload, and a damaged file is
ignored rather than trusted."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from shriven.feeds.kite.instruments import Instrument
from shriven.universe.recorded import RECORDED_FILE, load_recorded, record_instruments


def row(token: int, symbol: str, expiry: date | None = None) -> Instrument:
    kind, segment = ("CE", "NFO-OPT") if expiry else ("EQ", "INDICES")
    return Instrument(token, token >> 8, symbol, "NIFTY", 0.0, expiry, 25000.0, 0.05, 75, kind,
                      segment, "NFO" if expiry else "NSE")  # fmt: skip


def test_recorded_instruments_accumulate_and_round_trip(tmp_path: Path) -> None:
    spot, ce = row(256265, "NIFTY 50"), row(9670658, "NIFTY26D0125000CE", date(2026, 12, 1))
    assert load_recorded(tmp_path) == []
    assert record_instruments(tmp_path, [spot, ce]) == 2
    assert record_instruments(tmp_path, [ce]) == 0  # nothing new: file untouched
    later = row(9671170, "NIFTY26D0125050CE", date(2026, 12, 1))
    assert record_instruments(tmp_path, [later]) == 1  # a re-centre adds, never drops
    assert load_recorded(tmp_path) == [spot, ce, later]


def test_a_damaged_table_is_ignored(tmp_path: Path) -> None:
    (tmp_path / RECORDED_FILE).write_text('{"format": "shriven-recorded-instruments", "rows": [')
    assert load_recorded(tmp_path) == []

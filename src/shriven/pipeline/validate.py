"""Sanity checks on what the feeds deliver, and when each market is open. Pure: no I/O.

Records are always written as received (the raw data is the truth); these checks only count and
report. Checks stay cheap because they run on every record in the writer's hot loop.
"""

from __future__ import annotations

from shriven.calendar import NSE_CLOSE, NSE_OPEN, nse_calendar
from shriven.events import BinanceDepth, BinanceTrade, KiteTick, Record, kite_packet

__all__ = [
    "NSE_CLOSE",
    "NSE_OPEN",
    "check_depth",
    "check_record",
    "kite_market_open",
    "market_open",
]


def kite_market_open(epoch_s: float) -> bool:
    """NSE's session by the calendar in force (shriven.calendar: holidays and special sessions
    once ``run`` has installed it; else 09:15 to 15:30 IST, Monday to Friday)."""
    return nse_calendar().is_open(epoch_s)


def market_open(venue: str, epoch_s: float) -> bool:
    """Whether ``venue`` is expected to be sending data now (Binance trades around the clock)."""
    if venue == "kite":
        return kite_market_open(epoch_s)
    return True


def _bad_decimal(text: str, allow_zero: bool) -> bool:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return True
    if v != v or v in (float("inf"), float("-inf")):
        return True
    return v < 0 or (v == 0 and not allow_zero)


def check_depth(record: BinanceDepth, refused: bool) -> str | None:
    """:func:`check_record` of a diff the books have just read: ``refused`` is the keeper's
    verdict on its levels (every one read as a number, in C), so the text is not read again.
    Re-reading the first levels here was 12% of Binance ingest CPU (benchmarks/ingest_stages.py)."""
    if record.last_update_id < record.first_update_id:
        return "binance_update_ids_reversed"
    return "binance_bad_level" if refused else None


def check_record(record: Record) -> str | None:
    """The kind of nonsense in ``record`` (a short name for counting), or None if it looks sane."""
    t = type(record)
    if t is KiteTick:
        r: KiteTick = record  # type: ignore[assignment]
        if kite_packet(r) is not None:
            return None  # a held packet's words are unsigned: nothing in it can be negative
        # Kite sends zeros for empty levels and for instruments that have not traded: not errors.
        # Only the best level each side is looked at: enough to catch garbage, cheap per tick.
        if r.last_price < 0 or r.last_traded_quantity < 0 or r.volume_traded < 0:
            return "kite_negative_value"
        if (r.bids and min(r.bids[0]) < 0) or (r.asks and min(r.asks[0]) < 0):
            return "kite_negative_depth"
        return None
    if t is BinanceDepth:
        d: BinanceDepth = record  # type: ignore[assignment]
        if d.last_update_id < d.first_update_id:
            return "binance_update_ids_reversed"
        # Only the first level each side: enough to catch garbage without parsing every string.
        if d.bids and (_bad_decimal(d.bids[0][0], False) or _bad_decimal(d.bids[0][1], True)):
            return "binance_bad_level"
        if d.asks and (_bad_decimal(d.asks[0][0], False) or _bad_decimal(d.asks[0][1], True)):
            return "binance_bad_level"
        return None
    if t is BinanceTrade:
        tr: BinanceTrade = record  # type: ignore[assignment]
        if _bad_decimal(tr.price, False) or _bad_decimal(tr.quantity, False):
            return "binance_bad_trade"
        return None
    return None

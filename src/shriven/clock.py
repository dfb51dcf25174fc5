"""Time vocabulary every room may use: the market zone and the one ns -> ISO 8601 conversion."""

from __future__ import annotations

from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

__all__ = ["IST", "UTC_ZONE", "format_ns", "iso_time"]

IST: Final = ZoneInfo("Asia/Kolkata")  # NSE's clock; Kite sends its times as IST wall clock
UTC_ZONE: Final = ZoneInfo("UTC")

_NS_PER_S: Final = 1_000_000_000


def format_ns(ns: int, zone: ZoneInfo) -> str:
    """ISO 8601 with nanoseconds and the offset of ``zone`` at that instant (``Z`` for UTC)."""
    seconds, frac = divmod(ns, _NS_PER_S)
    dt = datetime.fromtimestamp(seconds, tz=zone)
    off = dt.strftime("%z")
    off = "Z" if zone.key == "UTC" else f"{off[:3]}:{off[3:]}"
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{frac:09d}{off}"


def iso_time(ns: int | None) -> str | None:
    """:func:`format_ns` in UTC, None for None (a store's first/last time when it has none)."""
    return None if ns is None else format_ns(ns, UTC_ZONE)

"""Time to expiry in the units the pricer takes: calendar years of 365 days to 15:30 IST on the
expiry day."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Final

from shriven.clock import IST

__all__ = ["EXPIRY_CUTOFF_IST", "NS_PER_YEAR", "expiry_ns", "years_between"]

# NSE/BSE derivatives stop trading at 15:30 IST on their expiry day.
EXPIRY_CUTOFF_IST: Final = time(15, 30)
NS_PER_YEAR: Final = 365 * 86_400 * 1_000_000_000


def expiry_ns(expiry: date) -> int:
    """15:30 IST on the expiry date, in ns since the epoch: when the contract stops trading."""
    return int(datetime.combine(expiry, EXPIRY_CUTOFF_IST, tzinfo=IST).timestamp()) * 10**9


def years_between(now_ns: int, expiry_ns: int) -> float:
    """Years from ``now_ns`` to ``expiry_ns`` (negative once expired)."""
    return (expiry_ns - now_ns) / NS_PER_YEAR

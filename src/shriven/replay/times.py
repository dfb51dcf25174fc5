"""Parsing and printing instants for replay.

Input: ISO 8601 (``2025-08-01T09:15:00``, ``2025-08-01 09:15:00.123456789+05:30``,
``2026-11-20T10:00:00Z``, or a bare date ``2025-08-01`` meaning midnight). A time without an offset
is read in the market zone (``settings.market_tz``). Fractions keep up to nanoseconds.
Output: ISO 8601 in the chosen zone with nanoseconds and the zone's offset, e.g.
``2025-08-01T09:15:00.000000000+05:30``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shriven.clock import format_ns
from shriven.errors import ReplayError

__all__ = ["format_ns", "load_zone", "parse_instant", "zone_label"]

_NS_PER_S = 1_000_000_000
_ISO = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<hms>\d{2}:\d{2}(?::\d{2})?)(?:[.,](?P<frac>\d{1,9}))?)?"
    r"(?P<tz>Z|z|[+-]\d{2}:?\d{2})?$"
)


def load_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReplayError(
            f"unknown time zone {name!r}: use an IANA name such as Asia/Kolkata or UTC "
            "(SHRIVEN_MARKET_TZ)"
        ) from None


def parse_instant(text: str, zone: ZoneInfo) -> int:
    """Nanoseconds since the epoch for an ISO 8601 instant; no offset means ``zone``."""
    m = _ISO.match(text.strip())
    if m is None:
        raise ReplayError(
            f"cannot read the time {text!r}: use ISO 8601 such as 2025-08-01T09:15:00 "
            "(market zone), 2025-08-01T03:45:00Z or 2025-08-01T09:15:00+05:30"
        )
    hms = m["hms"] or "00:00:00"
    if hms.count(":") == 1:
        hms += ":00"
    tz = m["tz"]
    try:
        naive = datetime.fromisoformat(f"{m['date']}T{hms}")
    except ValueError as exc:
        raise ReplayError(f"cannot read the time {text!r}: {exc}") from None
    if tz is None:
        aware = naive.replace(tzinfo=zone)
    elif tz in ("Z", "z"):
        aware = naive.replace(tzinfo=UTC)
    else:
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 23 or minutes > 59:  # as Python's and RFC 3339's offsets: within a day
            raise ReplayError(
                f"cannot read the time {text!r}: the offset {tz} is not a UTC offset; use "
                "-23:59 to +23:59, e.g. +05:30, or Z"
            )
        offset = timedelta(hours=hours, minutes=minutes)
        aware = (naive - sign * offset).replace(tzinfo=UTC)
    seconds = int(aware.timestamp())  # whole seconds: exact, no float fraction involved
    frac = (m["frac"] or "").ljust(9, "0")
    return seconds * _NS_PER_S + int(frac or "0")


def zone_label(zone: ZoneInfo, at_ns: int) -> str:
    """``Asia/Kolkata (UTC+05:30)``, with the offset in force at ``at_ns``."""
    off = datetime.fromtimestamp(at_ns // _NS_PER_S, tz=zone).strftime("%z")
    return f"{zone.key} (UTC{off[:3]}:{off[3:]})"

"""The NSE trading calendar: which days trade and when, holidays and special sessions included.

The sessions come from pandas-market-calendars' ``NSE`` calendar (chosen over exchange-calendars'
``XBOM``: the same holidays, but only it lists special sessions such as Muhurat trading; see
docs/operations.md for the import time and size measured). pandas takes seconds to import, so
the library is read once, off the hot path (:func:`load_nse_calendar`), into a plain table of
sessions; everything that asks "is NSE open now" reads only that table and stays pure.

Until a calendar is installed (tests, `replay`, a build without the library) and for days
outside its range, the rule is the plain one: Monday to Friday, 09:15 to 15:30 IST.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Final

from shriven.clock import IST

NSE_OPEN: Final = time(9, 15)
NSE_CLOSE: Final = time(15, 30)


@dataclass(frozen=True, slots=True)
class TradingCalendar:
    """Sessions (IST date -> open and close, epoch seconds) for ``first`` .. ``last``."""

    first: date
    last: date
    sessions: dict[date, tuple[float, float]] = field(default_factory=dict)

    def covers(self, day: date) -> bool:
        return self.first <= day <= self.last

    def session(self, day: date) -> tuple[float, float] | None:
        """The session of ``day`` (IST), None when it does not trade."""
        if self.covers(day):
            return self.sessions.get(day)
        return _plain_session(day)

    def is_open(self, epoch_s: float) -> bool:
        day = datetime.fromtimestamp(epoch_s, IST).date()
        s = self.session(day)
        return s is not None and s[0] <= epoch_s < s[1]

    def is_trading_day(self, day: date) -> bool:
        return self.session(day) is not None

    def next_trading_day(self, day: date) -> date:
        """``day`` itself when it trades, else the next one that does (within a month)."""
        for i in range(31):
            d = day + timedelta(days=i)
            if self.is_trading_day(d):
                return d
        return day


def _plain_session(day: date) -> tuple[float, float] | None:
    if day.weekday() >= 5:
        return None
    o = datetime.combine(day, NSE_OPEN, IST).timestamp()
    c = datetime.combine(day, NSE_CLOSE, IST).timestamp()
    return (o, c)


PLAIN: Final = TradingCalendar(date.min, date.min)
_current: list[TradingCalendar] = [PLAIN]


def nse_calendar() -> TradingCalendar:
    """The calendar in force (the plain weekday rule until :func:`install` is called)."""
    return _current[0]


def install(calendar: TradingCalendar) -> None:
    """Make ``calendar`` the one every "is NSE open" question reads (``run`` does it at start)."""
    _current[0] = calendar


def load_nse_calendar(start: date, end: date) -> TradingCalendar:
    """Read NSE's sessions from ``start`` to ``end`` out of pandas-market-calendars (slow: it
    imports pandas; call it in a thread). ImportError when the library is missing."""
    import pandas_market_calendars as pmc

    schedule = pmc.get_calendar("NSE").schedule(start_date=start, end_date=end)
    sessions = {
        ts.date(): (row.market_open.timestamp(), row.market_close.timestamp())
        for ts, row in schedule.iterrows()
    }
    return TradingCalendar(start, end, sessions)


def parse_window(text: str) -> tuple[time, time]:
    """``08:45-15:45`` -> (08:45, 15:45), IST wall clock; ValueError otherwise."""
    try:
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
    except ValueError:
        raise ValueError(f"bad window {text!r}: give HH:MM-HH:MM (IST), e.g. 08:45-15:45") from None
    if not start < end:
        raise ValueError(f"bad window {text!r}: the start must come before the end")
    return start, end


def window_state(
    calendar: TradingCalendar, window: tuple[time, time], epoch_s: float
) -> tuple[bool, float]:
    """Whether ``epoch_s`` is inside the daily ``window`` of a trading day, and the epoch
    second when that next changes (the window's end, or the next trading day's start)."""
    day = datetime.fromtimestamp(epoch_s, IST).date()
    for i in range(40):
        d = day + timedelta(days=i)
        if not calendar.is_trading_day(d):
            continue
        start = datetime.combine(d, window[0], IST).timestamp()
        end = datetime.combine(d, window[1], IST).timestamp()
        if epoch_s < start:
            return False, start
        if epoch_s < end:
            return True, end
    return False, epoch_s + 86_400.0

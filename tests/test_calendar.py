"""The NSE calendar: holidays and special sessions from pandas-market-calendars decide when the
Kite feed is expected to send data (and so when silence is "stale")."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import date, datetime, time

import pytest

from shriven.app.kite_window import WindowedFeed
from shriven.calendar import (
    PLAIN,
    TradingCalendar,
    install,
    load_nse_calendar,
    nse_calendar,
    parse_window,
    window_state,
)
from shriven.clock import IST
from shriven.config import PipelineConfig
from shriven.feeds.base import FeedStats
from shriven.pipeline.daemon import Pipeline
from shriven.pipeline.health import evaluate, feed_is_stale
from shriven.pipeline.validate import kite_market_open
from shriven.wal import WalOptions


def _at(d: date, hh: int, mm: int = 0) -> float:
    return datetime.combine(d, time(hh, mm), IST).timestamp()


@pytest.fixture(autouse=True)
def _plain_afterwards() -> Iterator[None]:
    yield
    install(PLAIN)


@pytest.fixture(scope="module")
def nse() -> TradingCalendar:
    return load_nse_calendar(date(2025, 10, 1), date(2026, 12, 31))


def test_a_holiday_is_closed_and_its_neighbours_trade(nse):
    # 2026-11-10 (Tuesday) is an NSE holiday in the library; Monday and Wednesday trade.
    assert not nse.is_trading_day(date(2026, 11, 10))
    assert nse.is_open(_at(date(2026, 11, 9), 10)) and nse.is_open(_at(date(2026, 11, 11), 10))
    assert not nse.is_open(_at(date(2026, 11, 10), 10))
    assert nse.next_trading_day(date(2026, 11, 10)) == date(2026, 11, 11)


def test_a_special_session_is_open_only_in_its_own_hours(nse):
    # Muhurat trading, 2025-10-21: 13:45 to 14:45 IST instead of 09:15 to 15:30.
    d = date(2025, 10, 21)
    assert not nse.is_open(_at(d, 10))
    assert nse.is_open(_at(d, 14))
    assert not nse.is_open(_at(d, 15))


def test_without_a_calendar_weekdays_trade_0915_to_1530():
    assert nse_calendar() is PLAIN
    assert kite_market_open(_at(date(2026, 11, 10), 10))  # holiday unknown: open
    assert not kite_market_open(_at(date(2026, 11, 10), 15, 30))
    assert not kite_market_open(_at(date(2026, 11, 14), 10))  # Saturday


def test_an_installed_calendar_makes_a_silent_kite_feed_on_a_holiday_not_stale(nse):
    now = int(_at(date(2026, 11, 10), 11) * 1e9)
    started = now - 3600 * 10**9
    stats = FeedStats("kite")
    assert feed_is_stale(stats, 0, now, started, 30.0)  # plain rule: a Tuesday morning
    install(nse)
    assert not feed_is_stale(stats, 0, now, started, 30.0)
    trading = int(_at(date(2026, 11, 11), 11) * 1e9)
    assert feed_is_stale(stats, 0, trading, trading - 3600 * 10**9, 30.0)


def test_days_outside_the_calendar_fall_back_to_the_weekday_rule():
    cal = TradingCalendar(date(2026, 1, 1), date(2026, 1, 31), {})
    assert not cal.is_trading_day(date(2026, 1, 5))  # inside, no session listed
    assert cal.is_trading_day(date(2026, 2, 2))  # outside: a Monday trades


def test_the_kite_window_opens_on_trading_days_only(nse):
    window = parse_window("08:45-15:45")
    holiday, next_day = date(2026, 11, 10), date(2026, 11, 11)
    inside, change = window_state(nse, window, _at(holiday, 10))
    assert not inside and change == _at(next_day, 8, 45)
    inside, change = window_state(nse, window, _at(next_day, 9))
    assert inside and change == _at(next_day, 15, 45)
    with pytest.raises(ValueError, match="give HH:MM-HH:MM"):
        parse_window("morning")


class _Ticker:
    """Stands in for the Kite ticker adapter (venue, stats, run): the window's subject is when
    it is started and stopped."""

    venue = "kite"

    def __init__(self) -> None:
        self.stats = FeedStats("kite")
        self.stopped = False

    async def run(self) -> None:
        self.stats.connected = True
        try:
            await asyncio.Event().wait()
        finally:
            self.stopped = True


async def test_a_held_kite_feed_never_logs_in_on_a_holiday_and_health_says_held(nse, tmp_path):
    install(nse)
    starts: list[_Ticker] = []

    async def start():
        starts.append(_Ticker())
        return starts[-1], asyncio.Event().wait

    now = [_at(date(2026, 11, 10), 11)]  # a holiday, mid-morning
    feed = WindowedFeed(start, parse_window("08:45-15:45"), clock=lambda: now[0])
    pipeline = Pipeline(PipelineConfig(data_dir=tmp_path), wal=WalOptions(), health_port=None,
                        free_bytes=lambda: 10**12)  # fmt: skip
    pipeline.add_feed(feed)
    task = asyncio.create_task(feed.run())
    await asyncio.sleep(0.1)
    report = evaluate(pipeline.sources, now_ns=int(now[0] * 1e9))
    assert starts == []  # no login, no connection
    assert report["feeds"]["kite"]["held"].endswith("connects at 2026-11-11 08:45 IST")
    assert report["status"] == "ok" and report["problems"] == []
    # the next trading day inside the window: started; at the window's end: stopped, held again
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    now[0] = _at(date(2026, 11, 11), 15, 45) - 0.3
    task = asyncio.create_task(feed.run())
    for _ in range(50):
        if starts and starts[0].stats.connected:
            break
        await asyncio.sleep(0.02)
    assert len(starts) == 1 and feed.stats is starts[0].stats
    now[0] += 0.3  # the window ends
    for _ in range(100):
        if starts[0].stopped and feed.stats.held:
            break
        await asyncio.sleep(0.02)
    assert starts[0].stopped and feed.stats.held
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

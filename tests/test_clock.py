from __future__ import annotations

from shriven.clock import IST, format_ns, iso_time

NS = 1_763_610_960_123_456_789  # 2025-11-20T03:56:00.123456789Z


def test_one_instant_in_utc_and_in_the_market_zone() -> None:
    assert iso_time(NS) == "2025-11-20T03:56:00.123456789Z"
    assert format_ns(NS, IST) == "2025-11-20T09:26:00.123456789+05:30"


def test_no_time_is_none_and_before_1970_keeps_positive_nanoseconds() -> None:
    assert iso_time(None) is None
    assert iso_time(-1) == "1969-12-31T23:59:59.999999999Z"

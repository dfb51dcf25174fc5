"""Where show-subscriptions gets a spot price when none is given."""

from __future__ import annotations

import time
from pathlib import Path

from shriven.app.kite_plans import last_recorded_price
from shriven.events import KiteTick
from shriven.wal import WalWriter


def test_last_recorded_tick_gives_the_spot(tmp_path: Path) -> None:
    now = time.time_ns()
    ticks = [
        KiteTick(
            recv_ns=now - 3_000, seq=1, instrument_token=256265, mode="full", last_price=2_500_000
        ),
        KiteTick(
            recv_ns=now - 2_000, seq=2, instrument_token=260105, mode="full", last_price=5_200_000
        ),
        KiteTick(
            recv_ns=now - 1_000, seq=3, instrument_token=256265, mode="full", last_price=2_501_050
        ),
    ]
    with WalWriter(tmp_path / "ticks", segment_size=1 << 20) as writer:
        writer.append(ticks)
    assert last_recorded_price(tmp_path, 256265, now) == 25_010.5
    assert last_recorded_price(tmp_path, 260105, now) == 52_000.0
    assert last_recorded_price(tmp_path, 999, now) is None


def test_nothing_recorded_gives_none(tmp_path: Path) -> None:
    assert last_recorded_price(tmp_path, 256265) is None

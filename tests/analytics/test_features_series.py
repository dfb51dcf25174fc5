"""Book feature series: order-flow imbalance, imbalances, returns and realised volatility on a
hand-checked sequence, and `replay features` on a recorded chain."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest
from tests.analytics.chain_store import NS, T0, write_chain_store

from shriven.analytics import FeatureSampler, Top
from shriven.errors import ShrivenError
from shriven.replay import replay_features

IST = ZoneInfo("Asia/Kolkata")


def test_features_on_a_hand_checked_sequence() -> None:
    s = FeatureSampler(start_ns=10, every_ns=10, window=2)
    assert s.update(1, Top(100.0, 5.0, 101.0, 3.0, 20.0, 10.0)) == []  # before the start
    # bid up with 7 (e += 7), ask same price size 3 -> 4 (e -= 4, e += 3): OFI 6
    assert s.update(10, Top(100.5, 7.0, 101.0, 4.0, 22.0, 11.0)) == []  # at the instant: counts
    (row,) = s.update(12, Top(100.5, 7.0, 102.0, 1.0, 22.0, 9.0))
    assert row.at_ns == 10 and row.updates == 1
    assert row.ofi == pytest.approx(6.0)
    assert row.mid == pytest.approx(100.75) and row.spread == pytest.approx(0.5)
    assert row.microprice == pytest.approx((100.5 * 4 + 101.0 * 7) / 11)
    assert row.imbalance == pytest.approx(3 / 11) and row.imbalance_n == pytest.approx(11 / 33)
    assert row.log_return is None and row.realised_vol is None
    rows = s.until(30)
    assert [r.at_ns for r in rows] == [20, 30]
    r20, r30 = rows
    # the ask moved away (e += previous ask size 4): OFI 4
    assert r20.ofi == pytest.approx(4.0) and r20.updates == 1
    assert r20.log_return == pytest.approx(math.log(101.25 / 100.75))
    assert r30.log_return == pytest.approx(0.0) and r30.updates == 0
    assert r30.realised_vol == pytest.approx(abs(r20.log_return))  # type: ignore[arg-type]


def test_replay_features_samples_a_recorded_book_every_second(tmp_path: Path) -> None:
    rows = write_chain_store(tmp_path / "market", seconds=30, spot_vol=0.0005)
    future = next(r for r in rows if r.instrument_type == "FUT")
    out = tmp_path / "f.parquet"
    result = replay_features(
        tmp_path / "market", str(future.instrument_token), out, IST,
        start_ns=T0 + 5 * NS, end_ns=T0 + 25 * NS, every_ns=NS, fmt="parquet",
    )  # fmt: skip
    table = pq.read_table(out).to_pylist()
    assert result.rows == len(table) == 20
    for r in table:
        assert r["spread"] == pytest.approx(0.05)  # the generator quotes a tick wide
        assert r["mid"] == pytest.approx((r["bid"] + r["ask"]) / 2)
    # a tick a second, a few microseconds after each grid instant
    assert [r["updates"] for r in table] == [0] + [1] * 19
    assert all(r["log_return"] is not None for r in table[1:])
    text = io.StringIO()
    replay_features(
        tmp_path / "market", str(future.instrument_token), text, IST,
        start_ns=T0 + 5 * NS, end_ns=T0 + 7 * NS, every_ns=NS, fmt="jsonl",
    )  # fmt: skip
    first = json.loads(text.getvalue().splitlines()[0])
    assert first["time"].startswith("2026-11-25T11:15:05.")


def test_features_of_an_unrecorded_book_is_one_line(tmp_path: Path) -> None:
    write_chain_store(tmp_path / "market", seconds=3)
    with pytest.raises(ShrivenError) as info:
        replay_features(
            tmp_path / "market", "ETHUSDT", tmp_path / "f.parquet", IST,
            start_ns=T0, end_ns=T0 + 3 * NS, every_ns=NS,
        )  # fmt: skip
    assert "no book of binance:ETHUSDT" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "f.parquet").exists()

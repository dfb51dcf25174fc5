"""Put-call parity after spreads: one planted violation in a synthetic chain is found at the
right instant with the right size, and a consistent chain reports none."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.analytics.chain_store import NS, T0, write_chain_store

from shriven.analytics import ParityWatch, Quote, annualised_basis, calendar_basis, parity_check
from shriven.analytics.parity import BUY_SYNTHETIC, SELL_SYNTHETIC
from shriven.replay.arb import replay_arb
from shriven.sim.chain_records import Plant

IST = ZoneInfo("Asia/Kolkata")


def test_parity_after_spreads_takes_the_better_round_trip() -> None:
    # forward 100, strike 95, no discounting: C - P should be 5
    fut = Quote(99.95, 100.05)
    rich_call = parity_check(95.0, Quote(7.0, 7.1), Quote(1.0, 1.1), fut, 1.0)
    assert rich_call.direction == SELL_SYNTHETIC
    assert math.isclose(rich_call.edge, (7.0 - 1.1) - (100.05 - 95.0))  # 0.85
    assert math.isclose(rich_call.mid_deviation, (7.05 - 1.05) - 5.0)
    cheap_call = parity_check(95.0, Quote(3.0, 3.1), Quote(1.0, 1.1), fut, 1.0)
    assert cheap_call.direction == BUY_SYNTHETIC
    assert math.isclose(cheap_call.edge, (99.95 - 95.0) - (3.1 - 1.0))
    fair = parity_check(95.0, Quote(5.0, 5.1), Quote(0.0 + 0.05, 0.15), fut, 1.0)
    assert fair.edge < 0
    assert parity_check(95.0, Quote(None, 5.1), Quote(None, 0.15), fut, 1.0).edge is None


def test_the_watch_reports_a_violation_once_when_it_opens_and_once_when_it_closes() -> None:
    w = ParityWatch(threshold=0.5)
    assert w.set_future(1, "E", Quote(99.95, 100.05)) == []
    assert w.set_option(2, "E", 95.0, False, Quote(1.0, 1.1)) == []
    opened = w.set_option(3, "E", 95.0, True, Quote(7.0, 7.1))
    assert [(e.at_ns, e.opened, e.direction) for e in opened] == [(3, True, SELL_SYNTHETIC)]
    assert w.set_option(4, "E", 95.0, True, Quote(7.5, 7.6)) == []  # still open, larger
    closed = w.set_future(5, "E", Quote(101.0, 101.1))
    assert [(e.at_ns, e.opened) for e in closed] == [(5, False)]
    assert math.isclose(closed[0].edge, (7.5 - 1.1) - (100.05 - 95.0))  # the peak
    assert (w.opened_total, w.closed_total, w.open) == (1, 1, {})


def test_basis_is_the_yearly_carry() -> None:
    assert math.isclose(annualised_basis(100 * math.exp(0.07 * 0.25), 100, 0.25), 0.07)
    assert math.isclose(calendar_basis(100.0, 100 * math.exp(0.06 / 12), 0.1, 0.1 + 1 / 12), 0.06)
    assert annualised_basis(100.0, 100.0, 0.0) is None


def _arb(store: Path, threshold: float) -> list[dict[str, object]]:
    out = io.StringIO()
    replay_arb(store, out, IST, threshold=threshold, fmt="jsonl")
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_planted_violation_is_found_at_its_instant_with_its_size(tmp_path: Path) -> None:
    probe = write_chain_store(tmp_path / "probe", seconds=1)
    call = next(r for r in probe if r.instrument_type == "CE" and r.strike == 25_000.0)
    plant = Plant(call.instrument_token, T0 + 20 * NS, T0 + 30 * NS, 3.0)
    write_chain_store(tmp_path / "market", seconds=40, plant=plant)
    events = _arb(tmp_path / "market", threshold=1.0)
    assert [(e["event"], e["strike"], e["expiry"]) for e in events] == [
        ("opened", 25_000.0, call.expiry.isoformat()),
        ("closed", 25_000.0, call.expiry.isoformat()),
    ]
    opened, closed = events
    assert opened["time"].startswith("2026-11-25T11:15:20.")  # type: ignore[union-attr]
    assert closed["time"].startswith("2026-11-25T11:15:30.")  # type: ignore[union-attr]
    assert opened["direction"] == SELL_SYNTHETIC  # the call is rich: sell it, buy put and future
    # 3 rupees lifted, less the three half-spreads crossed (and the tick rounding): 2.8 to 3.0
    assert 2.75 <= opened["edge"] <= 3.0, opened  # type: ignore[operator]
    assert closed["since"] == opened["time"]


def test_a_consistent_chain_has_no_violation(tmp_path: Path) -> None:
    write_chain_store(tmp_path / "market", seconds=20)
    assert _arb(tmp_path / "market", threshold=0.0) == []

"""The subscription plan: spot, futures months and an option chain around ATM, re-centring and
rollover, over a generated table laid out like the real dump (today = Friday 2026-11-27:
NIFTY weeklies on Tuesdays 1, 8, 15, 22 Dec; monthlies 29 Dec, 26 Jan, 23 Feb)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from shriven.errors import UniverseError, UnknownSymbolError
from shriven.feeds.kite.instruments import Instrument, parse_instruments_csv
from shriven.sim.kite_instruments import generate_instruments
from shriven.universe import (
    InstrumentTable,
    build_plan,
    derive_interval,
    diff_plans,
    nearest_strike,
    needs_recentre,
    split_connections,
    update_plan,
)

IST = ZoneInfo("Asia/Kolkata")
TODAY = date(2026, 11, 27)
AS_OF = datetime(2026, 11, 27, 10, 0, tzinfo=IST)


@pytest.fixture(scope="module")
def table() -> InstrumentTable:
    return InstrumentTable(generate_instruments(TODAY))


def strikes(rows: tuple[Instrument, ...]) -> list[float]:
    return [r.strike for r in rows]


def test_nifty_at_25000_range_10_is_45_instruments(table: InstrumentTable) -> None:
    plan = build_plan(table, "NIFTY 50", 25_000, as_of=AS_OF, strike_range=10)
    assert plan.spot.instrument_token == 256265
    assert plan.underlying == "NIFTY"
    assert [f.tradingsymbol for f in plan.futures] == ["NIFTY26DECFUT", "NIFTY27JANFUT"]
    assert plan.option_expiry == date(2026, 12, 1)
    expected = [24_500.0 + 50 * k for k in range(21)]
    assert strikes(plan.calls) == expected
    assert strikes(plan.puts) == expected
    assert {c.instrument_type for c in plan.calls} == {"CE"}
    assert {p.instrument_type for p in plan.puts} == {"PE"}
    assert plan.calls[0].tradingsymbol == "NIFTY26D0124500CE"
    assert plan.puts[-1].tradingsymbol == "NIFTY26D0125500PE"
    assert len(plan) == 45
    assert len(plan.tokens) == len(set(plan.tokens)) == 45
    assert plan.modes == dict.fromkeys(plan.tokens, "full")
    assert plan.tradingsymbols[256265] == "NIFTY 50"
    assert plan.expiries == (date(2026, 12, 1), date(2026, 12, 29), date(2027, 1, 26))
    assert plan.missing_strikes == ()


@pytest.mark.parametrize(
    ("symbol", "spot", "atm", "interval"),
    [
        ("NIFTY 50", 24_980.0, 25_000.0, 50.0),
        ("NIFTY 50", 25_024.99, 25_000.0, 50.0),
        ("NIFTY 50", 25_025.0, 25_050.0, 50.0),  # half-up
        ("NIFTY 50", 24_611.3, 24_600.0, 50.0),
        ("NIFTY BANK", 51_950.0, 52_000.0, 100.0),
        ("NIFTY BANK", 52_049.0, 52_000.0, 100.0),
        ("NIFTY BANK", 52_730.5, 52_700.0, 100.0),
        ("NIFTY MID SELECT", 12_013.0, 12_025.0, 25.0),
    ],
)
def test_atm_follows_spot_and_derived_interval(
    table: InstrumentTable, symbol: str, spot: float, atm: float, interval: float
) -> None:
    plan = build_plan(table, symbol, spot, as_of=AS_OF, strike_range=3)
    assert plan.strike_interval == interval
    assert plan.atm_strike == atm
    assert strikes(plan.calls) == [atm + k * interval for k in range(-3, 4)]
    assert len(plan) == 1 + 2 + 7 + 7


def test_banknifty_has_monthly_options_and_futures(table: InstrumentTable) -> None:
    plan = build_plan(table, "NIFTY BANK", 52_000, as_of=AS_OF)
    assert plan.spot.instrument_token == 260105
    assert plan.underlying == "BANKNIFTY"
    assert plan.option_expiry == date(2026, 12, 29)
    assert plan.calls[10].tradingsymbol == "BANKNIFTY26DEC52000CE"
    assert [f.tradingsymbol for f in plan.futures] == ["BANKNIFTY26DECFUT", "BANKNIFTY27JANFUT"]
    assert len(plan) == 45


def test_expiry_choices(table: InstrumentTable) -> None:
    def expiry(sym: str, choice: str) -> date:
        return build_plan(table, sym, 25_000, as_of=AS_OF, expiry=choice).option_expiry

    assert expiry("NIFTY 50", "nearest") == date(2026, 12, 1)
    assert expiry("NIFTY 50", "next") == date(2026, 12, 8)
    assert expiry("NIFTY 50", "monthly") == date(2026, 12, 29)
    monthly = build_plan(table, "NIFTY 50", 25_000, as_of=AS_OF, expiry="monthly")
    assert monthly.calls[0].tradingsymbol == "NIFTY26DEC24500CE"
    assert expiry("NIFTY FIN SERVICE", "next") == date(2027, 1, 26)
    with pytest.raises(UniverseError, match="nearest, next or monthly"):
        expiry("NIFTY 50", "weekly")


def test_derive_interval_prefers_the_gap_near_the_money() -> None:
    listed = [float(s) for s in range(20_000, 24_000, 100)] + [
        float(s) for s in range(24_000, 26_001, 50)
    ]
    assert derive_interval(listed, 25_000) == 50
    assert derive_interval(listed, 20_500) == 100
    assert derive_interval([25_000.0], 25_000) == 0  # shown to people only, never an error


def test_the_chain_counts_listed_strikes_into_the_wider_far_ones(table: InstrumentTable) -> None:
    # The generator lists 40 strikes at 50 each side, then 20 at 100: 45 listed strikes below
    # 25,000 reach 22,500 (40 at 50, then 5 at 100).
    plan = build_plan(table, "NIFTY 50", 25_000, as_of=AS_OF, strike_range=45)
    assert len(plan.calls) == len(plan.puts) == 91
    assert strikes(plan.calls)[:7] == [22_500.0, 22_600.0, 22_700.0, 22_800.0, 22_900.0, 23_000.0,
                                       23_050.0]  # fmt: skip
    assert strikes(plan.calls)[-1] == 27_500.0
    assert (plan.strikes_below, plan.strikes_above) == (45, 45)
    assert plan.missing_strikes == () and plan.warnings == ()


def test_spot_resolution_from_the_instruments(table: InstrumentTable) -> None:
    assert table.resolve_spot("nifty 50").instrument_token == 256265
    assert table.resolve_spot("NSE:NIFTY BANK").instrument_token == 260105
    assert table.underlying_of(table.resolve_spot("NIFTY FIN SERVICE")) == "FINNIFTY"
    assert table.underlying_of(table.resolve_spot("NIFTY MID SELECT")) == "MIDCPNIFTY"


def test_index_listed_with_empty_name_resolves_by_tradingsymbol() -> None:
    rows = generate_instruments(TODAY)
    rows = [r._replace(name="") if r.segment == "INDICES" else r for r in rows]
    plan = build_plan(rows, "NIFTY 50", 25_000, as_of=AS_OF, strike_range=1)
    assert plan.spot.instrument_token == 256265 and len(plan) == 9


def test_unknown_symbol_lists_the_closest_names(table: InstrumentTable) -> None:
    with pytest.raises(UnknownSymbolError) as err:
        build_plan(table, "NIFTY50", 25_000, as_of=AS_OF)
    assert "'NIFTY 50'" in str(err.value)
    with pytest.raises(UnknownSymbolError, match="no futures or options"):
        build_plan(table, "INDIA VIX", 15, as_of=AS_OF)


def test_bad_spot_price_is_refused(table: InstrumentTable) -> None:
    for bad in (0.0, -5.0, float("nan")):
        with pytest.raises(UniverseError, match="positive"):
            build_plan(table, "NIFTY 50", bad, as_of=AS_OF)


def test_real_fixture_rows_do_not_disturb_the_chain(kite_fixtures) -> None:
    real = parse_instruments_csv((kite_fixtures / "instruments_all.csv").read_text())
    plan = build_plan(
        [*real, *generate_instruments(TODAY)], "NIFTY 50", 25_000, as_of=AS_OF, strike_range=10
    )
    assert len(plan) == 45


# ---------------------------------------------------------------- re-centring


def test_recentre_needs_more_than_half_a_strike_plus_hysteresis(table: InstrumentTable) -> None:
    plan = build_plan(table, "NIFTY 50", 25_000, as_of=AS_OF)
    for hovering in (25_024.0, 25_026.0, 25_037.0, 24_963.0):
        assert not needs_recentre(plan, hovering)
        same, diff = update_plan(plan, table, hovering, as_of=AS_OF)
        assert not diff and same.tokens == plan.tokens and same.spot_price == hovering
    assert needs_recentre(plan, 25_037.5)
    moved, diff = update_plan(plan, table, 25_040, as_of=AS_OF)
    assert moved.atm_strike == 25_050
    assert diff.reason == "recentre"
    by_token = table.by_token
    assert sorted(by_token[t].tradingsymbol for t in diff.subscribe) == [
        "NIFTY26D0125550CE",
        "NIFTY26D0125550PE",
    ]
    assert sorted(by_token[t].tradingsymbol for t in diff.unsubscribe) == [
        "NIFTY26D0124500CE",
        "NIFTY26D0124500PE",
    ]
    assert set(diff.subscribe.values()) == {"full"}
    # Falling back to the old boundary does not churn: 25,020 is 0.6 strikes from 25,050.
    back, diff = update_plan(moved, table, 25_020, as_of=AS_OF)
    assert not diff and back.atm_strike == 25_050


def test_big_move_shifts_the_whole_chain(table: InstrumentTable) -> None:
    plan = build_plan(table, "NIFTY BANK", 52_000, as_of=AS_OF)
    moved, diff = update_plan(plan, table, 53_480, as_of=AS_OF)
    assert moved.atm_strike == 53_500
    assert len(diff.subscribe) == len(diff.unsubscribe) == 2 * 15
    assert set(diff.unsubscribe).isdisjoint(moved.tokens)
    assert set(diff.subscribe) <= set(moved.tokens)
    assert set(plan.tokens) - set(diff.unsubscribe) | set(diff.subscribe) == set(moved.tokens)


def test_diff_says_why_and_what_changes(table: InstrumentTable) -> None:
    plan = build_plan(table, "NIFTY 50", 25_000, as_of=AS_OF)
    moved, diff = update_plan(plan, table, 25_100, as_of=AS_OF)
    assert diff.reason == "recentre"
    assert set(diff.subscribe) == set(moved.tokens) - set(plan.tokens)
    assert set(diff.unsubscribe) == set(plan.tokens) - set(moved.tokens)
    initial = diff_plans(None, [plan, moved], reason="initial")
    assert set(initial.subscribe) == set(plan.tokens) | set(moved.tokens)
    assert initial.unsubscribe == []


def test_a_fresh_dump_with_new_last_prices_is_not_a_rollover(table: InstrumentTable) -> None:
    plan = build_plan(table, "NIFTY 50", 25_000, as_of=AS_OF)
    # The next morning's dump: the same contracts, other last prices.
    fresh = InstrumentTable(
        [i._replace(last_price=i.last_price + 1.0) for i in table.by_token.values()]
    )
    within_hysteresis = 25_030.0  # past the rounding point, inside the hysteresis band
    same, diff = update_plan(plan, fresh, within_hysteresis, as_of=AS_OF)
    assert not diff and same.atm_strike == plan.atm_strike


def test_ticker_modes_are_per_instrument_class_and_survive_a_recentre(
    table: InstrumentTable,
) -> None:
    plan = build_plan(
        table, "NIFTY 50", 25_000, as_of=AS_OF, mode="full", class_modes={"option": "quote"}
    )
    assert plan.modes_by_class == {"index": "full", "future": "full", "option": "quote"}
    assert plan.modes[plan.spot.instrument_token] == "full"
    assert {plan.modes[f.instrument_token] for f in plan.futures} == {"full"}
    assert {plan.modes[o.instrument_token] for o in plan.calls + plan.puts} == {"quote"}
    moved, diff = update_plan(plan, table, 25_300, as_of=AS_OF)
    assert diff.subscribe and set(diff.subscribe.values()) == {"quote"}  # new strikes: options
    assert moved.modes_by_class == plan.modes_by_class


def test_an_unknown_ticker_mode_is_refused(table: InstrumentTable) -> None:
    with pytest.raises(UniverseError, match="unknown ticker mode 'deep' for option"):
        build_plan(table, "NIFTY 50", 25_000, as_of=AS_OF, class_modes={"option": "deep"})


# ---------------------------------------------------------------- rollover


def test_weekly_expiry_rolls_after_1530_ist_on_expiry_day(table: InstrumentTable) -> None:
    plan = build_plan(table, "NIFTY 50", 25_000, as_of=AS_OF)
    expiry_day = datetime(2026, 12, 1, 15, 29, tzinfo=IST)
    same, diff = update_plan(plan, table, 25_000, as_of=expiry_day)
    assert not diff and same.option_expiry == date(2026, 12, 1)
    after = datetime(2026, 12, 1, 15, 30, tzinfo=IST)
    rolled, diff = update_plan(plan, table, 25_010, as_of=after)
    assert diff.reason == "rollover"
    assert rolled.option_expiry == date(2026, 12, 8)
    assert rolled.calls[0].tradingsymbol == "NIFTY26D0824500CE"
    assert rolled.futures == plan.futures
    assert len(diff.subscribe) == len(diff.unsubscribe) == 42
    assert {table.by_token[t].expiry for t in diff.unsubscribe} == {date(2026, 12, 1)}


def test_futures_and_monthly_options_roll_after_the_monthly_expiry(
    table: InstrumentTable,
) -> None:
    plan = build_plan(table, "NIFTY BANK", 52_000, as_of=AS_OF)
    after = datetime(2026, 12, 30, 9, 15, tzinfo=IST)
    rolled, diff = update_plan(plan, table, 52_310, as_of=after)
    assert diff.reason == "rollover"
    assert [f.tradingsymbol for f in rolled.futures] == ["BANKNIFTY27JANFUT", "BANKNIFTY27FEBFUT"]
    assert rolled.option_expiry == date(2027, 1, 26)
    assert rolled.atm_strike == 52_300  # re-centred on the new spot at the same time
    fut_dec = plan.futures[0].instrument_token
    assert fut_dec in diff.unsubscribe and plan.futures[1].instrument_token not in diff.unsubscribe
    assert rolled.futures[1].instrument_token in diff.subscribe


def test_nothing_live_is_an_error_that_says_refresh(table: InstrumentTable) -> None:
    with pytest.raises(UniverseError, match="instruments fetch"):
        build_plan(table, "NIFTY 50", 25_000, as_of=datetime(2027, 6, 1, tzinfo=UTC))


# ---------------------------------------------------------------- connections and helpers


def test_connections_hold_3000_tokens_and_at_most_three() -> None:
    groups = split_connections(list(range(7_001)))
    assert [len(g) for g in groups] == [3000, 3000, 1001]
    assert split_connections([1, 1, 2]) == [(1, 2)]
    with pytest.raises(UniverseError, match="lower --strike-range"):
        split_connections(list(range(9_001)))


def test_nearest_strike_rounds_half_up_and_stays_within_the_listing() -> None:
    listed = [25_000.0, 25_050.0, 25_100.0, 25_200.0]
    assert nearest_strike(listed, 25_025) == 25_050
    assert nearest_strike(listed, 25_024.999) == 25_000
    assert nearest_strike(listed, 25_150) == 25_200
    assert nearest_strike(listed, 25_149.9) == 25_100
    assert nearest_strike(listed, 1.0) == 25_000
    assert nearest_strike(listed, 99_999.0) == 25_200

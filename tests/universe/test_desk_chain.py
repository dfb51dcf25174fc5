"""The option chain a desk expects, over dumps generated with the 2025-26 NSE/BSE rules (NIFTY
weekly on Tuesdays; BANKNIFTY, FINNIFTY, MIDCPNIFTY monthly; SENSEX weekly on Thursdays; strikes at
the index interval near the money and wider far out): "+-N strikes" is the N listed strikes each
side of the listed strike nearest spot, whatever their spacing. Today = Friday 2026-11-27."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from shriven.errors import UnknownSymbolError
from shriven.feeds.kite.instruments import Instrument
from shriven.sim.kite_instruments import (
    DEFAULT_INDICES,
    DESK_SPECS,
    RELIANCE,
    IndexSpec,
    generate_instruments,
)
from shriven.universe import InstrumentTable, build_plan, needs_recentre, update_plan

IST = ZoneInfo("Asia/Kolkata")
TODAY = date(2026, 11, 27)
AS_OF = datetime(2026, 11, 27, 10, 0, tzinfo=IST)
NIFTY, BANKNIFTY = DEFAULT_INDICES[0], DEFAULT_INDICES[1]


@pytest.fixture(scope="module")
def table() -> InstrumentTable:
    return InstrumentTable(generate_instruments(TODAY, DESK_SPECS))


def strikes(rows: tuple[Instrument, ...]) -> list[float]:
    return [r.strike for r in rows]


def only(*specs: IndexSpec, futures_months: int = 3) -> InstrumentTable:
    return InstrumentTable(generate_instruments(TODAY, specs, futures_months=futures_months))


def without(table: InstrumentTable, *tradingsymbols: str) -> InstrumentTable:
    """Yesterday's dump: today's without some contracts (tokens stay as Kite keeps them)."""
    gone = set(tradingsymbols)
    return InstrumentTable(i for i in table.by_token.values() if i.tradingsymbol not in gone)


# ---------------------------------------------------------------- counting listed strikes


def test_nifty_where_the_50_point_strikes_meet_the_100_point_ones_has_21_per_type(
    table: InstrumentTable,
) -> None:
    # Listed: 50 apart up to 27,000, then 100 apart. Counting intervals gave 16 strikes here.
    plan = build_plan(table, "NIFTY 50", 27_000, as_of=AS_OF, strike_range=10)
    below = [26_500.0 + 50 * k for k in range(10)]
    above = [27_100.0 + 100 * k for k in range(10)]
    assert strikes(plan.calls) == strikes(plan.puts) == [*below, 27_000.0, *above]
    assert plan.atm_strike == 27_000 and plan.warnings == () and plan.missing_strikes == ()


def test_nifty_among_its_100_point_far_strikes_has_21_per_type(table: InstrumentTable) -> None:
    plan = build_plan(table, "NIFTY 50", 27_987.5, as_of=AS_OF, strike_range=10)
    assert plan.atm_strike == 28_000
    assert strikes(plan.calls) == [27_000.0 + 100 * k for k in range(21)]
    assert len(plan) == 1 + 2 + 21 + 21


@pytest.mark.parametrize(
    ("spot", "strike_range", "expected"),
    [
        (60_100.0, 0, [60_000.0]),
        (60_300.0, 1, [60_000.0, 60_500.0, 61_000.0]),
        (60_000.0, 10, [55_800.0, 55_900.0, *(56_000.0 + 500 * k for k in range(19))]),
        # where the 100-point strikes end at 56,000 and the 500-point ones begin
        (56_010.0, 3, [55_700.0, 55_800.0, 55_900.0, 56_000.0, 56_500.0, 57_000.0, 57_500.0]),
    ],
)
def test_banknifty_counts_its_500_point_far_strikes(
    table: InstrumentTable, spot: float, strike_range: int, expected: list[float]
) -> None:
    plan = build_plan(table, "NIFTY BANK", spot, as_of=AS_OF, strike_range=strike_range)
    assert strikes(plan.calls) == strikes(plan.puts) == expected
    assert plan.warnings == ()


def test_a_strike_missing_from_the_listing_is_skipped_not_an_error() -> None:
    holed = only(replace(NIFTY, unlisted=(25_700.0,)))
    # Halfway between the listed 25,650 and 25,750: the higher one, as spot rounds half-up.
    plan = build_plan(holed, "NIFTY 50", 25_700, as_of=AS_OF, strike_range=0)
    assert strikes(plan.calls) == strikes(plan.puts) == [25_750.0]
    wider = build_plan(holed, "NIFTY 50", 25_690, as_of=AS_OF, strike_range=2)
    assert strikes(wider.calls) == [25_550.0, 25_600.0, 25_650.0, 25_750.0, 25_800.0]


def test_strikes_off_the_grid_are_listed_strikes_like_any_other(table: InstrumentTable) -> None:
    # RELIANCE lists 10 apart plus 1447.5 and 1457.5 (strikes adjusted by a corporate action).
    plan = build_plan(table, "RELIANCE", 1_450, as_of=AS_OF, strike_range=2)
    assert strikes(plan.calls) == strikes(plan.puts) == [1_440.0, 1_447.5, 1_450.0, 1_457.5, 1_460]
    assert plan.spot.exchange == "NSE" and plan.underlying == "RELIANCE"
    assert [f.tradingsymbol for f in plan.futures] == ["RELIANCE26DECFUT", "RELIANCE27JANFUT"]
    assert plan.option_expiry == date(2026, 12, 29)  # stocks: monthly only
    near = build_plan(table, "RELIANCE", 1_446.9, as_of=AS_OF, strike_range=0)
    assert strikes(near.calls) == [1_447.5]


def test_fewer_listed_strikes_than_asked_is_a_plan_warning(table: InstrumentTable) -> None:
    # 40 strikes at 50 and 20 at 100 below 25,000: 60, not 70.
    plan = build_plan(table, "NIFTY 50", 25_000, as_of=AS_OF, strike_range=70)
    assert (plan.strikes_below, plan.strikes_above) == (60, 60)
    assert len(plan.calls) == 121
    assert plan.warnings == (
        "only 60 listed NIFTY strike(s) below ATM 25000 for 2026-12-01, not 70",
        "only 60 listed NIFTY strike(s) above ATM 25000 for 2026-12-01, not 70",
    )
    assert plan.to_dict()["warnings"] == list(plan.warnings)


# ---------------------------------------------------------------- what the listing lacks


def test_options_without_futures_plan_no_futures_and_say_so() -> None:
    plan = build_plan(
        only(replace(NIFTY, futures=False)), "NIFTY 50", 25_000, as_of=AS_OF, strike_range=1
    )
    assert plan.futures == () and len(plan.calls) == 3
    assert plan.warnings == ("NIFTY lists no futures: the plan has none",)


def test_futures_without_options_plan_the_futures_and_say_so() -> None:
    plan = build_plan(only(replace(RELIANCE, options=False)), "RELIANCE", 1_450, as_of=AS_OF)
    assert [f.tradingsymbol for f in plan.futures] == ["RELIANCE26DECFUT", "RELIANCE27JANFUT"]
    assert plan.calls == plan.puts == () and plan.option_expiry is None and len(plan) == 3
    assert plan.warnings == ("RELIANCE lists no options: recording the spot and futures only",)
    assert "instruments fetch" not in " ".join(plan.warnings)  # a refresh cannot help
    # and it stays put as spot moves
    same, diff = update_plan(plan, only(replace(RELIANCE, options=False)), 1_600, as_of=AS_OF)
    assert not diff and same.futures == plan.futures


def test_one_futures_month_listed_is_a_warning() -> None:
    plan = build_plan(only(NIFTY, futures_months=1), "NIFTY 50", 25_000, as_of=AS_OF)
    assert len(plan.futures) == 1
    assert plan.warnings == ("only 1 live NIFTY futures month(s) listed, not 2",)


def test_a_stale_dump_short_of_futures_months_advises_a_refresh() -> None:
    late = datetime(2027, 1, 27, 10, 0, tzinfo=IST)  # Dec and Jan expired; Feb live
    plan = build_plan(only(NIFTY), "NIFTY 50", 25_000, as_of=late, expiry="monthly")
    assert [f.tradingsymbol for f in plan.futures] == ["NIFTY27FEBFUT"]
    assert len(plan.warnings) == 1 and "instruments fetch --force" in plan.warnings[0]


# ---------------------------------------------------------------- re-centring


def test_recentring_uses_the_gap_to_the_listed_neighbour_on_that_side(
    table: InstrumentTable,
) -> None:
    plan = build_plan(table, "NIFTY 50", 27_000, as_of=AS_OF, strike_range=2)
    assert plan.neighbours == (26_950.0, 27_100.0)
    # Above: 27,100 is 100 away, so 0.75 of it is 27,075; below, 0.75 of 50 is 26,962.5.
    assert not needs_recentre(plan, 27_050) and not needs_recentre(plan, 27_074.9)
    assert needs_recentre(plan, 27_075)
    assert not needs_recentre(plan, 26_963) and needs_recentre(plan, 26_962.5)
    moved, diff = update_plan(plan, table, 27_080, as_of=AS_OF)
    assert diff.reason == "recentre" and moved.atm_strike == 27_100
    assert strikes(moved.calls) == [26_950.0, 27_000.0, 27_100.0, 27_200.0, 27_300.0]


def test_range_0_recentres_on_the_listed_neighbours_too(table: InstrumentTable) -> None:
    plan = build_plan(table, "NIFTY BANK", 60_000, as_of=AS_OF, strike_range=0)
    assert plan.neighbours == (59_500.0, 60_500.0)
    same, diff = update_plan(plan, table, 60_300, as_of=AS_OF)
    assert not diff and same.atm_strike == 60_000
    moved, diff = update_plan(plan, table, 60_400, as_of=AS_OF)
    assert diff.reason == "recentre" and strikes(moved.calls) == [60_500.0]


# ---------------------------------------------------------------- a fresh dump


def test_a_refresh_listing_a_new_strike_replans_around_the_same_atm() -> None:
    after = only(NIFTY)
    before = without(after, "NIFTY26D0125100CE", "NIFTY26D0125100PE")
    plan = build_plan(before, "NIFTY 50", 25_000, as_of=AS_OF, strike_range=3)
    assert strikes(plan.calls) == [24_850.0, 24_900.0, 24_950.0, 25_000.0, 25_050.0, 25_150.0,
                                   25_200.0]  # fmt: skip
    by_token = after.by_token
    new, diff = update_plan(plan, after, 25_010, as_of=AS_OF)  # spot has not moved enough
    assert diff.reason == "refresh"
    assert strikes(new.calls) == [24_850.0 + 50 * k for k in range(7)]
    assert sorted(by_token[t].tradingsymbol for t in diff.subscribe) == [
        "NIFTY26D0125100CE",
        "NIFTY26D0125100PE",
    ]
    assert sorted(by_token[t].tradingsymbol for t in diff.unsubscribe) == [
        "NIFTY26D0125200CE",
        "NIFTY26D0125200PE",
    ]
    assert new.spot_price == 25_010 and new.atm_strike == 25_000


def test_a_refresh_listing_a_second_futures_month_is_a_refresh_not_a_rollover() -> None:
    after = only(NIFTY)
    plan = build_plan(
        without(after, "NIFTY27JANFUT", "NIFTY27FEBFUT"), "NIFTY 50", 25_000, as_of=AS_OF
    )
    assert len(plan.futures) == 1
    new, diff = update_plan(plan, after, 25_000, as_of=AS_OF)
    assert diff.reason == "refresh"
    assert [f.tradingsymbol for f in new.futures] == ["NIFTY26DECFUT", "NIFTY27JANFUT"]
    assert [new.futures[1].instrument_token] == list(diff.subscribe) and not diff.unsubscribe
    assert new.warnings == ()


# ---------------------------------------------------------------- one resolution of a symbol


def test_a_bse_row_listed_first_does_not_win_without_a_prefix(table: InstrumentTable) -> None:
    rows = list(table.by_token.values())
    bse = next(i for i in rows if i.tradingsymbol == "RELIANCE" and i.exchange == "BSE")
    nse = next(i for i in rows if i.tradingsymbol == "RELIANCE" and i.exchange == "NSE")
    assert rows.index(bse) < rows.index(nse)
    assert table.resolve_spot("RELIANCE") == nse
    assert table.resolve_spot("nse:reliance") == nse
    assert table.resolve_spot("BSE:RELIANCE") == bse
    assert build_plan(table, "BSE:RELIANCE", 1_450, as_of=AS_OF).spot == bse


def test_an_exchange_prefix_chooses_the_exchange(table: InstrumentTable) -> None:
    assert table.resolve_spot("BSE:SENSEX").instrument_token == 265
    with pytest.raises(UnknownSymbolError, match="'NIFTY 50' is not listed on BSE, only on NSE"):
        table.resolve_spot("BSE:NIFTY 50")
    with pytest.raises(UnknownSymbolError, match="unknown exchange 'NFO'"):
        table.resolve_spot("NFO:NIFTY 50")


def test_every_spelling_of_a_symbol_keys_the_same_spot(table: InstrumentTable) -> None:
    assert table.spot_keyed({"nifty 50": 1.0, "NSE:NIFTY BANK": 2.0, " RELIANCE ": 3.0}) == {
        256265: 1.0,
        260105: 2.0,
        738561: 3.0,
    }


# ---------------------------------------------------------------- SENSEX on BSE


def test_sensex_weekly_options_expire_on_thursday_and_roll_at_1530_ist(
    table: InstrumentTable,
) -> None:
    plan = build_plan(table, "SENSEX", 82_030, as_of=AS_OF, strike_range=2)
    assert plan.option_expiry == date(2026, 12, 3)  # a Thursday
    assert {c.exchange for c in plan.calls} == {"BFO"} and plan.atm_strike == 82_000
    assert [f.tradingsymbol for f in plan.futures] == ["SENSEX26DECFUT", "SENSEX27JANFUT"]
    assert plan.futures[0].expiry == date(2026, 12, 31)
    _, diff = update_plan(plan, table, 82_030, as_of=datetime(2026, 12, 3, 15, 29, tzinfo=IST))
    assert not diff
    rolled, diff = update_plan(plan, table, 82_030, as_of=datetime(2026, 12, 3, 15, 30, tzinfo=IST))
    assert diff.reason == "rollover" and rolled.option_expiry == date(2026, 12, 10)


def test_a_symbol_spelled_twice_is_one_spot(table: InstrumentTable) -> None:
    rows = table.resolve_spots(["NIFTY 50", "nse:nifty 50", "BSE:RELIANCE", "RELIANCE"])
    assert [(r.exchange, r.tradingsymbol) for r in rows] == [
        ("NSE", "NIFTY 50"),
        ("BSE", "RELIANCE"),
        ("NSE", "RELIANCE"),
    ]

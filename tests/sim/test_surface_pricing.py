"""The Kite simulator prices its futures and options from one volatility surface: every option
it streams is quoted around its surface price (bid <= price < ask, a tick apart), so the
implied volatilities of the quotes bracket the surface's volatility at every strike."""

from __future__ import annotations

import json
import math
import time
from datetime import date

import numpy as np
from kiteconnect import KiteConnect
from tests.sim.test_kite_sim import login_session
from tests.sim.test_kite_ticker_sim import connect, ticks_until

from shriven.analytics import implied_vol
from shriven.analytics.expiry import expiry_ns, years_between
from shriven.app.simulators import surface_pricing
from shriven.sim.background import simulator_thread
from shriven.sim.kite_instruments import generate_instruments
from shriven.sim.kite_rest import KiteSimulator
from shriven.sim.kite_ticker import KiteTickerSimulator
from shriven.sim.surface import DEFAULT_SURFACE

TODAY = date(2026, 11, 25)
CLOCK = 1_795_595_400.0  # 2026-11-25 14:00 IST: the clock the ticker stamps and prices at
SPOT = 25_000.0


async def test_streamed_quotes_bracket_the_surface_price_of_every_option() -> None:
    kite = KiteSimulator(instruments=generate_instruments(TODAY), prices={256265: SPOT})
    pricing = surface_pricing(kite)
    expiry = min(p.expiry_ns for p in pricing.values() if p.kind == "CE")
    near = [
        t
        for t, p in pricing.items()
        if p.spot_token == 256265
        and (p.kind == "FUT" or (p.expiry_ns == expiry and abs(p.strike - SPOT) <= 500))
    ]
    # the spot is not streamed, so it stays at its start price and the truth is known exactly
    ticker = KiteTickerSimulator(
        clock=lambda: CLOCK, start_prices={256265: SPOT}, pricing=pricing, ticks_per_second=5_000
    )
    address = await ticker.start()
    try:
        async with connect(f"{address}?api_key=sim_api_key&access_token=sim_access_token") as ws:
            await ws.send(json.dumps({"a": "subscribe", "v": near}))
            await ws.send(json.dumps({"a": "mode", "v": ["full", near]}))
            ticks = [t for t in await ticks_until(ws, 6 * len(near)) if t.mode == "full"]
    finally:
        await ticker.stop()
    last = {t.instrument_token: t for t in ticks}
    now_ns = int(CLOCK) * 1_000_000_000
    strikes, calls, bids, asks = [], [], [], []
    futures = 0
    for token, tick in last.items():
        p = pricing[token]
        truth = DEFAULT_SURFACE.price(SPOT, p, now_ns)
        bid = tick.bids[0][0] / 100 if tick.bids[0][1] else 0.0
        ask = tick.asks[0][0] / 100
        assert bid <= truth < ask and round(ask - bid, 2) == 0.05, (p, bid, truth, ask)
        assert tick.last_price / 100 == bid or bid == 0
        if p.kind == "FUT":
            futures += 1
            years = years_between(now_ns, p.expiry_ns)
            assert truth == SPOT * math.exp(DEFAULT_SURFACE.rate * years)
            continue
        strikes.append(p.strike)
        calls.append(p.kind == "CE")
        bids.append(bid)
        asks.append(ask)
    assert futures >= 2 and len(strikes) >= 30
    years = years_between(now_ns, expiry)
    forward = SPOT * math.exp(DEFAULT_SURFACE.rate * years)
    k = np.array(strikes)
    surface = np.array([DEFAULT_SURFACE.vol(math.log(s / forward), years) for s in strikes])
    rate = DEFAULT_SURFACE.rate
    iv_bid = implied_vol(np.array(bids), forward, k, years, np.array(calls), rate).vol
    iv_ask = implied_vol(np.array(asks), forward, k, years, np.array(calls), rate).vol
    has_bid = np.array(bids) > 0
    assert np.all(iv_ask > surface)
    assert np.all(iv_bid[has_bid] <= surface[has_bid])
    assert expiry == expiry_ns(date(2026, 12, 1))  # the weekly, 6 days 1.5 hours ahead
    assert has_bid.sum() >= 20


def test_rest_quotes_of_futures_and_options_are_their_surface_price_at_the_rest_spot() -> None:
    # REST quotes are priced at the wall clock: a table listed today, an expiry days ahead
    kite = KiteSimulator(today=date.today(), prices={256265: SPOT})
    pricing = surface_pricing(kite)
    kite.pricing.update(pricing)
    by_token = {i.instrument_token: i for i in kite.instruments}
    soon = time.time_ns() + 2 * 86_400 * 10**9
    expiry = min(p.expiry_ns for p in pricing.values() if p.kind == "CE" and p.expiry_ns > soon)
    chosen = [
        t
        for t, p in pricing.items()
        if p.spot_token == 256265
        and (p.kind == "FUT" or (p.expiry_ns == expiry and p.strike in (24_500.0, 25_500.0)))
    ]
    keys = [f"NFO:{by_token[t].tradingsymbol}" for t in chosen]
    with simulator_thread(kite) as url:
        client = KiteConnect(kite.account.api_key, root=url)
        client.set_access_token(login_session(kite, url)["access_token"])
        quotes, ltps = client.quote(keys), client.ltp(keys)
    now_ns = time.time_ns()
    assert len(quotes) == len(keys) == 7  # three futures, two strikes of calls and puts
    for key, token in zip(keys, chosen, strict=True):
        truth = DEFAULT_SURFACE.price(SPOT, pricing[token], now_ns)
        last = quotes[key]["last_price"]
        assert last == ltps[key]["last_price"]
        assert truth - 0.06 < last <= truth + 1e-9, (key, last, truth)  # the tick at or under
    assert len({quotes[k]["last_price"] for k in keys}) == len(keys)

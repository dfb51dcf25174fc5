"""Black-76 Greeks are the derivatives of the Black-76 price (checked by finite differences)."""

from __future__ import annotations

import numpy as np

from shriven.analytics import DAYS_PER_YEAR, black76_price, greeks

F = np.array([25_000.0, 25_000.0, 24_000.0, 1_450.0, 52_000.0])
K = np.array([25_000.0, 26_000.0, 23_000.0, 1_400.0, 50_000.0])
T = np.array([7 / 365, 30 / 365, 0.5, 0.1, 2 / 365])
VOL = np.array([0.12, 0.18, 0.25, 0.3, 0.4])
RATE = 0.065


def _price(f=F, t=T, vol=VOL, call=True):  # type: ignore[no-untyped-def]
    return black76_price(f, K, t, vol, np.full(F.shape, call), RATE)


def test_greeks_are_finite_differences_of_the_price() -> None:
    for call in (True, False):
        g = greeks(F, K, T, VOL, np.full(F.shape, call), RATE)
        e = F * 1e-6
        delta = (_price(f=F + e, call=call) - _price(f=F - e, call=call)) / (2 * e)
        h = F * 1e-4
        gamma = (
            _price(f=F + h, call=call) - 2 * _price(call=call) + _price(f=F - h, call=call)
        ) / (h * h)
        dv = 1e-5
        vega = (_price(vol=VOL + dv, call=call) - _price(vol=VOL - dv, call=call)) / (2 * dv)
        dt = 1e-6
        theta = -(_price(t=T + dt, call=call) - _price(t=T - dt, call=call)) / (2 * dt)
        assert np.allclose(g.price, _price(call=call))
        assert np.allclose(g.delta, delta, rtol=1e-6, atol=1e-9)
        assert np.allclose(g.gamma, gamma, rtol=1e-3)
        assert np.allclose(g.vega, vega / 100, rtol=1e-6)  # per vol point
        assert np.allclose(g.theta, theta / DAYS_PER_YEAR, rtol=1e-5)  # per calendar day


def test_call_minus_put_is_the_discounted_forward_minus_strike() -> None:
    c = _price(call=True)
    p = _price(call=False)
    assert np.allclose(c - p, np.exp(-RATE * T) * (F - K))

"""The vectorised implied-volatility solver against Jaeckel's "Let's be rational" (the reference
implementation, py_lets_be_rational) and against the volatility that priced each option."""

from __future__ import annotations

import math

import numpy as np
import pytest
from py_lets_be_rational import implied_volatility_from_a_transformed_rational_guess as lbr

from shriven.analytics import black76_price, implied_vol
from shriven.analytics.iv import ABOVE_BOUND, BAD_INPUT, BELOW_INTRINSIC, OK, REASONS

RATE = 0.065


def _sample(n: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    forward = rng.uniform(50, 60_000, n)
    strike = forward * np.exp(rng.uniform(-0.4, 0.4, n))
    t = rng.uniform(0.5 / 365, 2.0, n)
    vol = rng.uniform(0.02, 1.5, n)
    call = rng.random(n) < 0.5
    return forward, strike, t, vol, call


def test_matches_lets_be_rational_to_1e_8() -> None:
    forward, strike, t, vol, call = _sample(3_000, seed=11)
    price = black76_price(forward, strike, t, vol, call, RATE)
    ours = implied_vol(price, forward, strike, t, call, RATE)
    compared = 0
    for i in range(price.size):
        undiscounted = float(price[i] * math.exp(RATE * t[i]))
        q = 1.0 if call[i] else -1.0
        try:
            ref = lbr(undiscounted, float(forward[i]), float(strike[i]), float(t[i]), q)
        except Exception:  # the oracle refuses a price it calls below intrinsic
            assert ours.reason[i] == BELOW_INTRINSIC
            continue
        if ours.reason[i] == BELOW_INTRINSIC:
            # the float price of a deep in-the-money option carries no time value
            assert ref < 1e-2 or undiscounted - max(q * (forward[i] - strike[i]), 0) <= 0
            continue
        assert ours.reason[i] == OK, (i, REASONS[int(ours.reason[i])])
        assert abs(ours.vol[i] - ref) < 1e-8, (i, ours.vol[i], ref)
        compared += 1
    assert compared > 2_800


def test_recovers_the_pricing_volatility_where_the_price_holds_it() -> None:
    forward, strike, t, vol, call = _sample(200_000, seed=5)
    price = black76_price(forward, strike, t, vol, call, RATE)
    iv = implied_vol(price, forward, strike, t, call, RATE)
    intrinsic = np.where(call, np.maximum(forward - strike, 0), np.maximum(strike - forward, 0))
    # time value of at least 1e-6 of the price (the float price still says what the vol was),
    # and a price above 1e-12 of the forward (not one near the smallest float)
    held = ((price * np.exp(RATE * t) - intrinsic) > 1e-6 * price) & (price > 1e-12 * forward)
    assert held.mean() > 0.95
    assert np.all(iv.reason[held] == OK)
    assert np.max(np.abs(iv.vol[held] - vol[held])) < 1e-8


def test_below_intrinsic_above_bound_and_bad_input_give_nan_with_a_reason() -> None:
    price = np.array([4.0, 101.0, 5.0, np.nan, 5.0, 5.0, 0.0, 5.0])
    forward = np.array([100.0, 100.0, 100.0, 100.0, -1.0, 100.0, 100.0, 100.0])
    strike = np.array([95.0, 90.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0])
    t = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.0, 0.1, 0.1])
    call = np.array([True, True, True, True, True, True, True, False])
    iv = implied_vol(price, forward, strike, t, call, 0.0)
    assert list(iv.reason) == [
        BELOW_INTRINSIC,  # a 95 call worth 4 with the forward at 100
        ABOVE_BOUND,  # a call worth more than the forward
        OK,
        BAD_INPUT,
        BAD_INPUT,
        BAD_INPUT,
        BELOW_INTRINSIC,  # an out-of-the-money call worth nothing: no time value
        OK,
    ]
    assert np.isnan(iv.vol[[0, 1, 3, 4, 5, 6]]).all()
    assert iv.vol[2] == pytest.approx(iv.vol[7])  # ATM call and put: the same vol
    for code in iv.reason:
        assert isinstance(REASONS[int(code)], str)


def test_shapes_broadcast_and_are_kept() -> None:
    strikes = np.array([[90.0, 100.0, 110.0]])
    price = black76_price(100.0, strikes, 0.25, 0.2, True)
    iv = implied_vol(price, 100.0, strikes, 0.25, True)
    assert iv.vol.shape == (1, 3)
    assert np.allclose(iv.vol, 0.2, atol=1e-10)

"""Black-76 prices and Greeks of European options on a forward, vectorised over numpy arrays.

Conventions (the ones a desk quotes): ``forward`` and ``strike`` in rupees, ``t`` in years
(calendar days / 365), ``vol`` a decimal (0.15 = 15%), ``rate`` continuously compounded and used
only to discount (the forward already carries the drift), ``is_call`` a boolean array. Delta and
gamma are with respect to the forward, theta is the change of value per calendar day as time
passes, vega the change per vol point (0.01).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

__all__ = ["DAYS_PER_YEAR", "Greeks", "black76_price", "greeks", "norm_pdf"]

DAYS_PER_YEAR = 365.0
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)

Array = NDArray[np.float64]


def norm_pdf(x: Array) -> Array:
    return _INV_SQRT_2PI * np.exp(-0.5 * x * x)


def _arrays(
    forward: ArrayLike, strike: ArrayLike, t: ArrayLike, vol: ArrayLike, is_call: ArrayLike
) -> tuple[Array, Array, Array, Array, NDArray[np.bool_]]:
    return (
        np.asarray(forward, dtype=np.float64),
        np.asarray(strike, dtype=np.float64),
        np.asarray(t, dtype=np.float64),
        np.asarray(vol, dtype=np.float64),
        np.asarray(is_call, dtype=bool),
    )


def _d1_d2(forward: Array, strike: Array, t: Array, vol: Array) -> tuple[Array, Array, Array]:
    v = vol * np.sqrt(t)
    d1 = (np.log(forward / strike) + 0.5 * v * v) / v
    return d1, d1 - v, v


def black76_price(
    forward: ArrayLike,
    strike: ArrayLike,
    t: ArrayLike,
    vol: ArrayLike,
    is_call: ArrayLike,
    rate: float = 0.0,
) -> Array:
    """Discounted Black-76 value of each option."""
    f, k, tt, s, call = _arrays(forward, strike, t, vol, is_call)
    d1, d2, _v = _d1_d2(f, k, tt, s)
    sign = np.where(call, 1.0, -1.0)
    undiscounted = sign * (f * ndtr(sign * d1) - k * ndtr(sign * d2))
    return np.exp(-rate * tt) * undiscounted


class Greeks(NamedTuple):
    price: Array
    delta: Array  # d value / d forward
    gamma: Array  # d delta / d forward
    theta: Array  # value change per calendar day passing (negative for a long option, mostly)
    vega: Array  # value change per vol point (0.01)


def greeks(
    forward: ArrayLike,
    strike: ArrayLike,
    t: ArrayLike,
    vol: ArrayLike,
    is_call: ArrayLike,
    rate: float = 0.0,
) -> Greeks:
    """Price and Greeks of each option; NaN where ``vol`` is NaN (an IV that could not be found)."""
    f, k, tt, s, call = _arrays(forward, strike, t, vol, is_call)
    d1, d2, v = _d1_d2(f, k, tt, s)
    disc = np.exp(-rate * tt)
    sign = np.where(call, 1.0, -1.0)
    nd1 = ndtr(sign * d1)
    price = disc * sign * (f * nd1 - k * ndtr(sign * d2))
    pdf = norm_pdf(d1)
    sqrt_t = np.sqrt(tt)
    delta = disc * sign * nd1
    gamma = disc * pdf / (f * v)
    vega = disc * f * pdf * sqrt_t
    # value = disc(T) * B(T): dV/dT = -rate * V + disc * F * pdf * vol / (2 sqrt T); time passing
    # shortens T, so theta = -dV/dT
    theta = rate * price - disc * f * pdf * s / (2.0 * sqrt_t)
    return Greeks(price, delta, gamma, theta / DAYS_PER_YEAR, vega / 100.0)

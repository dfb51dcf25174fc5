"""Implied volatility of Black-76 prices, solved for a whole chain at once (numpy).

Every option is first reduced to the out-of-the-money option at its strike, whose price is the
time value (``price / discount - intrinsic``), and normalised by ``sqrt(F K)``: with
``x = -|ln(F/K)|`` and total volatility ``v = vol * sqrt(t)`` that price is
``b(x, v) = e^(x/2) N(x/v + v/2) - e^(-x/2) N(x/v - v/2)``, strictly increasing in ``v`` from 0
to ``e^(x/2)``. Newton's method on ``ln b`` (which keeps deep out-of-the-money prices, tiny in
absolute terms, well scaled) starts from the Corrado-Miller estimate and keeps a bracket: a step
that leaves the bracket is replaced by bisection, so it never diverges. Only the options not yet
converged are iterated (most take 3-5 steps).

A price with no time value (at or below intrinsic), at or above the no-arbitrage bound (the
forward for a call, the strike for a put, undiscounted), or with a non-positive or non-finite
input gives NaN and a reason code (:data:`REASONS`), never an exception.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

from shriven.analytics.black76 import norm_pdf

__all__ = [
    "ABOVE_BOUND",
    "BAD_INPUT",
    "BELOW_INTRINSIC",
    "NO_CONVERGENCE",
    "OK",
    "REASONS",
    "ImpliedVol",
    "implied_vol",
]

OK: Final = 0
BELOW_INTRINSIC: Final = 1
ABOVE_BOUND: Final = 2
BAD_INPUT: Final = 3
NO_CONVERGENCE: Final = 4
REASONS: Final[dict[int, str]] = {
    OK: "",
    BELOW_INTRINSIC: "price at or below intrinsic value (no time value)",
    ABOVE_BOUND: "price at or above the no-arbitrage bound",
    BAD_INPUT: "price missing or negative, or forward, strike or time to expiry not positive",
    NO_CONVERGENCE: "the solver did not converge",
}

_MAX_STEPS: Final = 60
# |ln b(v) - ln beta| below this: the price is matched to ~1e-14 relative
_TOLERANCE: Final = 1e-14
_STEP_TOLERANCE: Final = 1e-8
_SQRT_2PI: Final = float(np.sqrt(2.0 * np.pi))


class ImpliedVol(NamedTuple):
    vol: NDArray[np.float64]  # annualised; NaN where reason != OK
    reason: NDArray[np.int8]  # OK, BELOW_INTRINSIC, ABOVE_BOUND, BAD_INPUT or NO_CONVERGENCE


def _normalised(x: NDArray[np.float64], v: NDArray[np.float64]) -> NDArray[np.float64]:
    """b(x, v) for x <= 0, v > 0."""
    h = 0.5 * x
    d1 = x / v + 0.5 * v
    return np.exp(h) * ndtr(d1) - np.exp(-h) * ndtr(d1 - v)


def _initial(x: NDArray[np.float64], beta: NDArray[np.float64]) -> NDArray[np.float64]:
    """Corrado-Miller's estimate of v in normalised units (F' = e^(x/2), K' = e^(-x/2))."""
    f = np.exp(0.5 * x)
    k = 1.0 / f
    half = beta - 0.5 * (f - k)
    root = np.sqrt(np.maximum(half * half - (f - k) ** 2 / np.pi, 0.0))
    v0 = _SQRT_2PI / (f + k) * (half + root)
    # Never start at 0 nor beyond the point where b is all but flat.
    return np.clip(v0, 1e-3, 10.0)


def implied_vol(
    price: ArrayLike,
    forward: ArrayLike,
    strike: ArrayLike,
    t: ArrayLike,
    is_call: ArrayLike,
    rate: float = 0.0,
) -> ImpliedVol:
    """The Black-76 volatility of each discounted option ``price`` (same conventions as
    :func:`shriven.analytics.black76.black76_price`); arrays broadcast together."""
    p, f, k, tt, call = np.broadcast_arrays(
        np.asarray(price, dtype=np.float64),
        np.asarray(forward, dtype=np.float64),
        np.asarray(strike, dtype=np.float64),
        np.asarray(t, dtype=np.float64),
        np.asarray(is_call, dtype=bool),
    )
    shape = p.shape
    p, f, k, tt, call = (a.ravel() for a in (p, f, k, tt, call))
    vol = np.full(p.shape, np.nan)
    reason = np.full(p.shape, OK, dtype=np.int8)

    with np.errstate(all="ignore"):
        good = np.isfinite(p) & np.isfinite(f) & np.isfinite(k) & np.isfinite(tt)
        good &= (p >= 0) & (f > 0) & (k > 0) & (tt > 0)
        reason[~good] = BAD_INPUT
        undiscounted = p * np.exp(rate * tt)
        intrinsic = np.where(call, np.maximum(f - k, 0.0), np.maximum(k - f, 0.0))
        bound = np.where(call, f, k)
        time_value = undiscounted - intrinsic
        below = good & (time_value <= 0.0)
        above = good & ~below & (undiscounted >= bound)
        reason[below] = BELOW_INTRINSIC
        reason[above] = ABOVE_BOUND
        todo = np.flatnonzero(good & ~below & ~above)

        sqrt_fk = np.sqrt(f[todo] * k[todo])
        x = -np.abs(np.log(f[todo] / k[todo]))
        beta = time_value[todo] / sqrt_fk
        v = _solve(x, beta)
        failed = ~np.isfinite(v)
        vol[todo] = v / np.sqrt(tt[todo])
        reason[todo[failed]] = NO_CONVERGENCE
    return ImpliedVol(vol.reshape(shape), reason.reshape(shape))


def _solve(x: NDArray[np.float64], beta: NDArray[np.float64]) -> NDArray[np.float64]:
    """v with b(x, v) = beta, for x <= 0 and 0 < beta < e^(x/2); NaN where not converged."""
    out = np.full(x.shape, np.nan)
    active = np.arange(x.size)
    v = _initial(x, beta)
    eh = np.exp(0.5 * x)
    emh = 1.0 / eh
    lo = np.zeros_like(v)
    hi = np.full_like(v, np.inf)
    target = np.log(beta)
    for _ in range(_MAX_STEPS):
        d1 = x / v + 0.5 * v
        b = eh * ndtr(d1) - emh * ndtr(d1 - v)
        g = np.log(b) - target
        lo = np.where(g < 0.0, v, lo)
        hi = np.where(g > 0.0, v, hi)
        step = v - g * b / (eh * norm_pdf(d1))
        inside = (step > lo) & (step < hi)  # False for NaN
        new = np.where(inside, step, np.where(np.isfinite(hi), 0.5 * (lo + hi), 2.0 * v))
        # converged: the price is matched, or Newton's step is below the rounding noise of b
        matched = np.abs(g) < _TOLERANCE
        done = matched | (inside & (np.abs(step - v) <= _STEP_TOLERANCE * v))
        if done.any():
            out[active[done]] = np.where(matched, v, new)[done]
            keep = ~done
            if not keep.any():
                break
            active, x, new, lo, hi, target, eh, emh = (
                a[keep] for a in (active, x, new, lo, hi, target, eh, emh)
            )
        v = new
    return out

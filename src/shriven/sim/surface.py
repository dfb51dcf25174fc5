"""One volatility surface and carry rate from which the Kite simulator prices every future and
option of an underlying, so a recorded simulator chain is arbitrage-free up to the tick size and
its implied volatilities are known.

The future of expiry T trades at ``spot * e^(rate T)``; an option is Black-76 on that future,
discounted at ``rate``, with volatility ``vol(m, T) = atm + term * T + skew * m + smile * m^2``
(``m = ln(K / F)``), floored at 1%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

from shriven.analytics.expiry import years_between

__all__ = ["DEFAULT_SURFACE", "PricedInstrument", "VolSurface"]


@dataclass(frozen=True, slots=True)
class VolSurface:
    atm: float = 0.14
    term: float = 0.02
    skew: float = -0.25
    smile: float = 1.5
    rate: float = 0.065

    def vol(self, log_moneyness: float, years: float) -> float:
        m = log_moneyness
        return max(0.01, self.atm + self.term * years + self.skew * m + self.smile * m * m)

    def forward(self, spot: float, years: float) -> float:
        return spot * math.exp(self.rate * max(years, 0.0))

    def price(self, spot: float, inst: PricedInstrument, now_ns: int) -> float:
        """The theoretical price of ``inst`` with the underlying at ``spot``, in rupees."""
        years = years_between(now_ns, inst.expiry_ns)
        forward = self.forward(spot, years)
        if inst.kind == "FUT":
            return forward
        if years <= 0:
            return (
                max(forward - inst.strike, 0.0)
                if inst.kind == "CE"
                else max(inst.strike - forward, 0.0)
            )
        t = years
        vol = self.vol(math.log(inst.strike / forward), t)
        # Scalar Black-76 with math.erfc: a tick is priced in ~1 us (numpy's per-call overhead is
        # ~20x that), and the truth the analytics are tested against is computed independently.
        v = vol * math.sqrt(t)
        d1 = math.log(forward / inst.strike) / v + 0.5 * v
        d2 = d1 - v
        disc = math.exp(-self.rate * t)
        if inst.kind == "CE":
            return disc * (forward * _n(d1) - inst.strike * _n(d2))
        return disc * (inst.strike * _n(-d2) - forward * _n(-d1))


def _n(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


DEFAULT_SURFACE: Final = VolSurface()


@dataclass(frozen=True, slots=True)
class PricedInstrument:
    """A derivative the simulator prices from its underlying's spot token."""

    spot_token: int
    kind: Literal["FUT", "CE", "PE"]
    strike: float
    expiry_ns: int

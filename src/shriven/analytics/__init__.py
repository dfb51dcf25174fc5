"""Options and book analytics on numbers (pure, no I/O): Black-76 prices and Greeks, the
vectorised implied-volatility solver, put-call parity and basis, book feature series.

The store-reading views that feed them live in shriven.replay (chain, arb, features)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shriven.lazy import lazy_exports

if TYPE_CHECKING:
    from shriven.analytics.black76 import DAYS_PER_YEAR, Greeks, black76_price, greeks
    from shriven.analytics.features import FeatureRow, FeatureSampler, Top
    from shriven.analytics.iv import REASONS, ImpliedVol, implied_vol
    from shriven.analytics.parity import (
        ParityCheck,
        ParityEvent,
        ParityWatch,
        Quote,
        annualised_basis,
        calendar_basis,
        parity_check,
    )

# Each name loads from its module at first use (shriven/lazy.py says why).
__getattr__ = lazy_exports(
    __name__,
    {
        "DAYS_PER_YEAR": "shriven.analytics.black76",
        "Greeks": "shriven.analytics.black76",
        "black76_price": "shriven.analytics.black76",
        "greeks": "shriven.analytics.black76",
        "FeatureRow": "shriven.analytics.features",
        "FeatureSampler": "shriven.analytics.features",
        "Top": "shriven.analytics.features",
        "REASONS": "shriven.analytics.iv",
        "ImpliedVol": "shriven.analytics.iv",
        "implied_vol": "shriven.analytics.iv",
        "ParityCheck": "shriven.analytics.parity",
        "ParityEvent": "shriven.analytics.parity",
        "ParityWatch": "shriven.analytics.parity",
        "Quote": "shriven.analytics.parity",
        "annualised_basis": "shriven.analytics.parity",
        "calendar_basis": "shriven.analytics.parity",
        "parity_check": "shriven.analytics.parity",
    },
)

__all__ = [
    "DAYS_PER_YEAR",
    "REASONS",
    "FeatureRow",
    "FeatureSampler",
    "Greeks",
    "ImpliedVol",
    "ParityCheck",
    "ParityEvent",
    "ParityWatch",
    "Quote",
    "Top",
    "annualised_basis",
    "black76_price",
    "calendar_basis",
    "greeks",
    "implied_vol",
    "parity_check",
]

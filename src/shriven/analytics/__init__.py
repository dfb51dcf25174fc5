"""Options and book analytics on numbers (pure, no I/O): Black-76 prices and Greeks, the
vectorised implied-volatility solver, put-call parity and basis, book feature series.

The store-reading views that feed them live in shriven.replay (chain, arb, features)."""

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

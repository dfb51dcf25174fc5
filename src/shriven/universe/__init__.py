"""Which instruments to record: spot, futures months and an option chain around the money."""

from shriven.universe.plan import (
    EXPIRY_CHOICES,
    PlanDiff,
    SubscriptionPlan,
    build_plan,
    derive_interval,
    diff_plans,
    nearest_strike,
    needs_recentre,
    split_connections,
    update_plan,
)
from shriven.universe.table import KNOWN_UNDERLYINGS, InstrumentTable, is_live, qualified_symbol

__all__ = [
    "EXPIRY_CHOICES",
    "KNOWN_UNDERLYINGS",
    "InstrumentTable",
    "PlanDiff",
    "SubscriptionPlan",
    "build_plan",
    "derive_interval",
    "diff_plans",
    "is_live",
    "nearest_strike",
    "needs_recentre",
    "qualified_symbol",
    "split_connections",
    "update_plan",
]

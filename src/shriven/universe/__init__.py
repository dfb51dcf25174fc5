"""Which instruments to record: spot, futures months and an option chain around the money."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shriven.lazy import lazy_exports

if TYPE_CHECKING:
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

# Each name loads from its module at first use (shriven/lazy.py says why).
__getattr__ = lazy_exports(
    __name__,
    {
        "EXPIRY_CHOICES": "shriven.universe.plan",
        "PlanDiff": "shriven.universe.plan",
        "SubscriptionPlan": "shriven.universe.plan",
        "build_plan": "shriven.universe.plan",
        "derive_interval": "shriven.universe.plan",
        "diff_plans": "shriven.universe.plan",
        "nearest_strike": "shriven.universe.plan",
        "needs_recentre": "shriven.universe.plan",
        "split_connections": "shriven.universe.plan",
        "update_plan": "shriven.universe.plan",
        "KNOWN_UNDERLYINGS": "shriven.universe.table",
        "InstrumentTable": "shriven.universe.table",
        "is_live": "shriven.universe.table",
        "qualified_symbol": "shriven.universe.table",
    },
)

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

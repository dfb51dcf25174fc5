"""Kite's LTP API: the last traded price of one instrument, asked over REST."""

from __future__ import annotations

import math

from shriven.errors import UniverseError
from shriven.feeds.kite.auth import KiteAuth
from shriven.feeds.kite.instruments import Instrument


def kite_ltp(auth: KiteAuth, spot: Instrument) -> float:
    key = f"{spot.exchange}:{spot.tradingsymbol}"
    answer = auth.call(lambda kite: kite.ltp([key]))
    row = answer.get(key) if isinstance(answer, dict) else None
    price = row.get("last_price") if isinstance(row, dict) else None
    # A number (not a bool, not text), finite and positive: anything else is no answer.
    if type(price) not in (int, float) or not 0 < price < math.inf:
        raise UniverseError(f"Kite's LTP API returned no price for {key}; pass --spot PRICE")
    return float(price)

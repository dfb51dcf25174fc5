"""Symbols checked against a venue's ``exchangeInfo``, and quarterly roll aliases.

An alias is ``<pair>_<contract type>`` (``BTCUSD_CURRENT_QUARTER``, ``BTCUSDT_NEXT_QUARTER``,
``BTCUSD_PERPETUAL``): it names the listed contract of that pair and contract type that is
trading now, so a configuration need not change each quarter. Pure: no I/O here.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from shriven.errors import ConfigError
from shriven.feeds.binance.streams import Listing, VenueInfo
from shriven.feeds.binance.venues import ALIAS_CONTRACT_TYPES

__all__ = ["Resolved", "alias_parts", "resolve_symbols"]

# A contract that is no longer, or not yet, trading (exchangeInfo status / contractStatus).
_ENDED = frozenset({"DELIVERED", "DELIVERING", "SETTLING", "CLOSE", "PRE_SETTLE"})


@dataclass(frozen=True, slots=True)
class Resolved:
    """The contracts to record (in the order configured) and what stands behind each."""

    symbols: list[str]
    listings: dict[str, Listing]
    aliases: dict[str, str]  # alias -> the contract it names now


def alias_parts(name: str) -> tuple[str, str] | None:
    """``(pair, contract type)`` of an alias, else None."""
    for ctype in ALIAS_CONTRACT_TYPES:
        if name.endswith("_" + ctype):
            return name[: -len(ctype) - 1], ctype
    return None


def _alias_target(venue: str, alias: str, info: VenueInfo) -> Listing:
    pair, ctype = alias_parts(alias)  # type: ignore[misc]
    live = [
        row
        for row in info.listings.values()
        if row.pair == pair and row.contract_type == ctype and row.status not in _ENDED
    ]
    if not live:
        types = sorted({r.contract_type for r in info.listings.values() if r.pair == pair} - {""})
        listed = f"{pair} lists {', '.join(types)}" if types else f"{venue} lists no pair {pair}"
        raise ConfigError(
            f"{venue}: alias {alias} names no trading {ctype} contract ({listed}); fix the "
            "symbol or its alias"
        )
    return min(live, key=lambda r: r.delivery_date)


def resolve_symbols(venue: str, configured: Sequence[str], info: VenueInfo) -> Resolved:
    """Check ``configured`` against ``info``: ConfigError (one line naming the venue and the
    closest listed symbols) for a symbol not listed or no longer trading."""
    symbols: list[str] = []
    aliases: dict[str, str] = {}
    listings: dict[str, Listing] = {}
    for name in configured:
        if alias_parts(name) is not None and name not in info.listings:
            row = _alias_target(venue, name, info)
            aliases[name] = row.symbol
        else:
            row = info.listings.get(name)  # type: ignore[assignment]
            if row is None:
                close = difflib.get_close_matches(name, sorted(info.listings), n=3, cutoff=0.6)
                hint = f"closest listed: {', '.join(close)}" if close else "nothing close is listed"
                raise ConfigError(
                    f"{venue} does not list {name} ({hint}); fix the symbol in the settings or "
                    "--symbols"
                )
            if row.status in _ENDED:
                raise ConfigError(
                    f"{venue}: {name} is {row.status}, no longer trading; configure the next "
                    "contract or an alias such as "
                    f"{row.pair}_{row.contract_type or 'CURRENT_QUARTER'}"
                )
        if row.symbol not in listings:
            symbols.append(row.symbol)
            listings[row.symbol] = row
    return Resolved(symbols, listings, aliases)

"""Binance spot market data: stream message parsing, depth synchronisation, websocket adapter.

``parse_message`` and ``DepthSync`` are pure. The network parts (``BinanceFeed``,
``SnapshotClient``) are imported on first use so that pure users (the book keeper, replay) do not
pull in aiohttp or websockets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shriven.feeds.binance.sync import DepthSync, SnapshotResult

if TYPE_CHECKING:
    from shriven.feeds.binance.feed import BinanceFeed, build_binance_feed
    from shriven.feeds.binance.rest import SnapshotClient

__all__ = [
    "BinanceFeed",
    "DepthSync",
    "SnapshotClient",
    "SnapshotResult",
    "build_binance_feed",
]


def __getattr__(name: str) -> object:
    if name in ("BinanceFeed", "build_binance_feed"):
        from shriven.feeds.binance import feed

        return getattr(feed, name)
    if name == "SnapshotClient":
        from shriven.feeds.binance.rest import SnapshotClient

        return SnapshotClient
    raise AttributeError(name)

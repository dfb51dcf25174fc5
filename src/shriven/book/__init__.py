"""L2 order books, the features derived from them, and the keeper that maintains them from records.

Pure code: no asyncio, no I/O.
"""

from shriven.book.features import BookFeatures, features
from shriven.book.keeper import BookKeeper, KeeperStats
from shriven.book.orderbook import Level, OrderBook

__all__ = ["BookFeatures", "BookKeeper", "KeeperStats", "Level", "OrderBook", "features"]

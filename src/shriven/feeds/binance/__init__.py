"""Binance spot market data: the message schema and parser (pure), REST snapshots and the websocket
adapter. Depth synchronisation is book logic and lives in shriven.book.depth_sync."""

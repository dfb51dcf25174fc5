"""Binance combined-stream subscriptions and the messages each client gets. Pure: no I/O.

Streams served: ``<symbol>@trade`` and the diff-depth stream under the names Binance gives it
(``<symbol>@depth``, ``<symbol>@depth@100ms``, ``<symbol>@depth@1000ms``); each carries the
recorded diffs, whose update ids chain whatever the name's interval. A client's control messages
are answered as Binance answers them (``{"result": null, "id": 1}``, ``{"error": {...}}``); a
stream of a symbol nothing was recorded for is accepted and stays silent, as the venue does for
a symbol that does not trade.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Final

from shriven.events import BinanceDepth, BinanceTrade, Record
from shriven.feeds.binance.wire import combined, depth_event, trade_event

__all__ = ["BinanceSubscriptions", "EventEncoder", "parse_streams", "stream_names"]

_STREAM: Final = re.compile(r"^([a-z0-9]{2,30})@(trade|depth|depth@100ms|depth@1000ms)\Z")
_DEPTH_NAMES: Final = ("depth", "depth@100ms", "depth@1000ms")


class StreamError(ValueError):
    """A stream name shriven does not serve; the message says which are served."""


def parse_streams(names: list[str]) -> list[str]:
    """Checked, lower-cased stream names; raises StreamError naming the first bad one."""
    out = []
    for name in names:
        n = str(name).strip().lower()
        if not _STREAM.match(n):
            raise StreamError(
                f"shriven serves <symbol>@trade and <symbol>@depth[@100ms|@1000ms] streams, "
                f"not {str(name)[:60]!r}"
            )
        out.append(n)
    return out


def stream_names(record: Record) -> tuple[str, ...]:
    """The stream names a record is published under."""
    t = type(record)
    if t is BinanceDepth:
        low = record.symbol.lower()  # type: ignore[union-attr]
        return tuple(f"{low}@{n}" for n in _DEPTH_NAMES)
    if t is BinanceTrade:
        return (f"{record.symbol.lower()}@trade",)  # type: ignore[union-attr]
    return ()


@dataclass(slots=True)
class BinanceSubscriptions:
    limit: int
    streams: set[str] = field(default_factory=set)
    raw: bool = False  # /ws/<stream>: events without the combined wrapper

    def control(self, text: str) -> str | None:
        """Apply one client message; the JSON answer (None: close the connection)."""
        try:
            req = json.loads(text)
        except (ValueError, RecursionError):
            return json.dumps({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None})
        if not isinstance(req, dict):
            return _error(2, "Invalid request: expected an object", None)
        rid = req.get("id")
        if rid is not None and (type(rid) is not int or rid < 0) and type(rid) is not str:
            return _error(2, "Invalid request: request ID must be an unsigned integer", None)
        method = req.get("method")
        params = req.get("params", [])
        if method == "LIST_SUBSCRIPTIONS":
            return json.dumps({"result": sorted(self.streams), "id": rid})
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE"):
            return _error(
                2,
                "Invalid request: method must be one of SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS",
                rid,
            )
        if not isinstance(params, list):
            return _error(2, "Invalid request: params must be a list of stream names", rid)
        try:
            names = parse_streams(params)
        except StreamError as exc:
            return _error(2, f"Invalid request: {exc}", rid)
        if method == "UNSUBSCRIBE":
            self.streams.difference_update(names)
        else:
            new = set(names) - self.streams
            if len(self.streams) + len(new) > self.limit:
                return _error(
                    2, f"Invalid request: at most {self.limit} streams per connection", rid
                )
            self.streams |= new
        return json.dumps({"result": None, "id": rid})


def _error(code: int, msg: str, rid: object) -> str:
    return json.dumps({"error": {"code": code, "msg": msg}, "id": rid})


class EventEncoder:
    """One record's event JSON, encoded once, wrapped once per stream name asked for."""

    __slots__ = ("_data", "_names", "_wrapped")

    def __init__(self, record: Record) -> None:
        self._names = stream_names(record)
        self._data = (
            (
                depth_event(record) if type(record) is BinanceDepth else trade_event(record)  # type: ignore[arg-type]
            )
            if self._names
            else ""
        )
        self._wrapped: dict[str, str] = {}

    def message_for(self, subs: BinanceSubscriptions) -> str | None:
        for name in self._names:
            if name in subs.streams:
                if subs.raw:
                    return self._data
                out = self._wrapped.get(name)
                if out is None:
                    out = self._wrapped[name] = combined(name, self._data)
                return out
        return None

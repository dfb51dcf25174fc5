"""Binance spot stream messages and REST depth answers -> records. Pure: no I/O.

A stream message is either wrapped (``{"stream": "btcusdt@trade", "data": {...}}``, the combined
stream) or bare. Only ``depthUpdate`` and ``trade`` events become records; anything else raises
:class:`BinanceMessageError` with a ``kind`` the adapter counts and logs once, and a short
``sample`` of the message.
"""

from __future__ import annotations

import json
from typing import Final

from shriven.events import BinanceDepth, BinanceDepthSnapshot, BinanceTrade

__all__ = [
    "BinanceMessageError",
    "ServerShutdown",
    "parse_depth_snapshot",
    "parse_message",
]

SAMPLE_CHARS: Final = 200

_loads = json.loads


class BinanceMessageError(ValueError):
    """A message we cannot or do not turn into a record. ``kind`` names the reason."""

    def __init__(self, kind: str, sample: str, reason: str = "") -> None:
        self.kind = kind
        self.sample = sample
        super().__init__(f"{kind}: {reason} (message starts {sample!r})" if reason else kind)


class ServerShutdown(BinanceMessageError):
    """The venue announced it will close this connection soon (``serverShutdown`` event)."""


def _sample(raw: bytes | str) -> str:
    text = raw if isinstance(raw, str) else raw[:SAMPLE_CHARS].decode("utf-8", "replace")
    return text[:SAMPLE_CHARS]


def _levels(raw: object) -> tuple[tuple[str, str], ...]:
    return tuple((str(p), str(q)) for p, q in raw)  # type: ignore[attr-defined]


def parse_message(
    raw: bytes | str, recv_ns: int, seq: int = 0
) -> BinanceDepth | BinanceTrade | None:
    """Turn one websocket text message into a record, or None for an acknowledgement of a
    request (``{"result": null, "id": 1}``). Raises :class:`BinanceMessageError` otherwise."""
    try:
        msg = _loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BinanceMessageError("malformed_json", _sample(raw), str(exc)) from None
    if not isinstance(msg, dict):
        raise BinanceMessageError("unexpected_message", _sample(raw), "not a JSON object")
    stream = msg.get("stream")
    data = msg.get("data", msg) if stream is not None else msg
    if not isinstance(data, dict):
        raise BinanceMessageError("unexpected_message", _sample(raw), "data is not an object")
    event = data.get("e")
    try:
        if event == "depthUpdate":
            return BinanceDepth(
                recv_ns,
                seq,
                data["s"],
                int(data["U"]),
                int(data["u"]),
                int(data["E"]),
                _levels(data["b"]),
                _levels(data["a"]),
            )
        if event == "trade":
            return BinanceTrade(
                recv_ns,
                seq,
                data["s"],
                int(data["t"]),
                str(data["p"]),
                str(data["q"]),
                int(data["T"]),
                int(data["E"]),
                bool(data["m"]),
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise BinanceMessageError(
            f"bad_{event}", _sample(raw), f"missing or bad field {exc}"
        ) from None
    if event is None and "result" in data and "id" in data:
        return None
    if event == "serverShutdown":
        raise ServerShutdown("server_shutdown", _sample(raw), "venue will close the connection")
    if event is None and "code" in data and "msg" in data:
        raise BinanceMessageError("venue_error", _sample(raw), str(data.get("msg")))
    if event is None and isinstance(stream, str) and "@" in stream:
        event = stream.split("@")[1]  # bookTicker and depth<N> payloads carry no "e"
    raise BinanceMessageError(f"unexpected_{event or 'message'}", _sample(raw), "not handled")


def parse_depth_snapshot(
    body: bytes | str, symbol: str, recv_ns: int, seq: int = 0
) -> BinanceDepthSnapshot:
    """The ``GET /api/v3/depth`` answer as a record. Raises :class:`BinanceMessageError`."""
    try:
        msg = _loads(body)
        return BinanceDepthSnapshot(
            recv_ns,
            seq,
            symbol,
            int(msg["lastUpdateId"]),
            _levels(msg["bids"]),
            _levels(msg["asks"]),
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise BinanceMessageError("bad_snapshot", _sample(body), str(exc)) from None
    except (KeyError, TypeError) as exc:
        raise BinanceMessageError("bad_snapshot", _sample(body), f"missing field {exc}") from None

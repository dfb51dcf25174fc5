"""The official kiteconnect KiteTicker (its twisted reactor), run in a subprocess by the serve
tests: connects to ``root``, subscribes tokens in their modes and writes one JSON line per event
(decoded ticks, raw binary messages in hex, text messages, the close) to ``out``.

Usage: python kite_client.py '{"root": ..., "api_key": ..., "access_token": ..., "modes":
{"256265": "full"}, "seconds": 5, "out": "/path"}'
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from datetime import datetime

from kiteconnect import KiteTicker
from twisted.internet import reactor
from twisted.internet.error import ReactorNotRunning


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return int(value.timestamp())
    raise TypeError(type(value).__name__)


def main() -> None:
    args = json.loads(sys.argv[1])
    out = open(args["out"], "w", encoding="utf-8")  # noqa: SIM115  (closed at exit)
    kws = KiteTicker(args["api_key"], args["access_token"], root=args["root"], reconnect=False)
    by_mode: dict[str, list[int]] = {}
    for token, mode in args["modes"].items():
        by_mode.setdefault(mode, []).append(int(token))

    def emit(obj: dict[str, object]) -> None:
        obj["t"] = time.time()
        out.write(json.dumps(obj, default=_plain) + "\n")
        out.flush()

    def stop() -> None:
        with contextlib.suppress(ReactorNotRunning):
            reactor.stop()

    def on_connect(ws: KiteTicker, response: object) -> None:
        emit({"connected": True})
        for mode, tokens in by_mode.items():
            ws.subscribe(tokens)
            ws.set_mode(mode, tokens)
        for text in args.get("send", []):
            ws.ws.sendMessage(text.encode("utf-8"))

    def on_message(ws: KiteTicker, payload: bytes, is_binary: bool) -> None:
        if is_binary:
            emit({"bin": payload.hex()})
        else:
            emit({"text": payload.decode("utf-8")})

    def on_ticks(ws: KiteTicker, ticks: list[dict[str, object]]) -> None:
        emit({"ticks": ticks})

    def on_close(ws: KiteTicker, code: int, reason: object) -> None:
        emit({"close": code, "reason": str(reason)})
        stop()

    def on_error(ws: KiteTicker, code: int, reason: object) -> None:
        emit({"error": code, "reason": str(reason)})
        stop()

    kws.on_connect = on_connect
    kws.on_message = on_message
    kws.on_ticks = on_ticks
    kws.on_close = on_close
    kws.on_error = on_error
    reactor.callLater(float(args["seconds"]), lambda: (emit({"timeout": True}), stop()))
    kws.connect()
    out.close()


if __name__ == "__main__":
    main()

"""The live server's own process (``run --serve``): the recorder hands it each written batch as
the WAL's msgpack payload over a pipe (the child's stdin), and the child decodes and fans it out,
so no per-client work runs on the recorder's event loop.

Frames on the pipe: one byte of kind, four of length (big-endian), the body.

- ``C`` once, first: the server's options, store and zone as JSON (the API key travels here,
  never in argv or the environment);
- ``B``: ``events.encode_batch`` of the recorder's Binance books (``BookSnapshot`` records) as of
  the batch just written, sent before the first batch a (re)started child gets;
- ``T``: with ``B``, each futures book's last diff's event and transaction times as JSON
  (``{"binance-usdm:BTCUSDT": [E, T]}``), which its depth answers carry;
- ``R``: one written batch's payload, in WAL order.

The child prints ``url http://HOST:PORT`` (or ``error <one line>``) on stdout once, logs JSON
lines on stderr (the recorder logs them as its own), serves until its stdin ends (the recorder
stopped, or died) and then closes its clients with code 1001.

    python -m shriven.serve.child
"""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from shriven.errors import ShrivenError
from shriven.events import decode_batch
from shriven.logging import configure_logging, get_logger
from shriven.serve.kite_wire import live_records
from shriven.serve.options import ServeOptions
from shriven.serve.server import Server

__all__ = [
    "HEAD",
    "KIND_BOOKS",
    "KIND_CONFIG",
    "KIND_RECORDS",
    "KIND_TIMES",
    "child_config",
    "main",
]

log = get_logger("shriven.serve")

HEAD: Final = struct.Struct(">cI")
KIND_CONFIG: Final = b"C"
KIND_BOOKS: Final = b"B"
KIND_RECORDS: Final = b"R"
KIND_TIMES: Final = b"T"


def child_config(options: ServeOptions, data_dir: Path, zone: str, *, log_level: str) -> bytes:
    """The ``C`` frame's body."""
    fields = {
        "host": options.host,
        "port": options.port,
        "api_key": options.api_key.get_secret_value() if options.api_key is not None else None,
        "max_clients": options.max_clients,
        "max_subscriptions": options.max_subscriptions,
        "client_buffer_bytes": options.client_buffer_bytes,
        "history_stall_secs": options.history_stall_secs,
        "socket_send_buffer": options.socket_send_buffer,
        "heartbeat_secs": options.heartbeat_secs,
        "cache_dir": str(options.cache_dir) if options.cache_dir is not None else None,
    }
    doc = {"options": fields, "data_dir": str(data_dir), "zone": zone, "log_level": log_level}
    return json.dumps(doc).encode()


def _options(fields: dict[str, object]) -> ServeOptions:
    key = fields.pop("api_key")
    cache = fields.pop("cache_dir")
    return ServeOptions(
        **fields,  # type: ignore[arg-type]
        api_key=SecretStr(str(key)) if key else None,
        cache_dir=Path(str(cache)) if cache else None,
    )


class _Pipe(asyncio.Protocol):
    """The recorder's frames as they arrive: every frame complete in one read is handed on at
    once (its batches are then fanned out together, in one dispatch), no per-frame await."""

    def __init__(self, on_frame: Callable[[bytes, bytes], None]) -> None:
        self.on_frame = on_frame
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._rest = b""  # the start of a frame not yet complete

    def data_received(self, data: bytes) -> None:
        buf = self._rest + data if self._rest else data
        at, end, head = 0, len(buf), HEAD.size
        while end - at >= head:
            kind, n = HEAD.unpack_from(buf, at)
            if end - at - head < n:
                break
            body = buf[at + head : at + head + n]
            at += head + n
            try:
                self.on_frame(kind, body)
            except Exception as exc:  # one bad batch costs its clients that batch, no more
                log.error("a batch from the recorder could not be served", error=repr(exc)[:200])
        self._rest = buf[at:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _serve_from_pipe() -> int:
    loop = asyncio.get_running_loop()
    config: asyncio.Future[bytes] = loop.create_future()
    server: Server | None = None

    def on_frame(kind: bytes, body: bytes) -> None:
        if not config.done():
            config.set_result(body)
            return
        live = server.core.live if server is not None else None
        if live is None:
            return  # (not serving yet: the recorder waits for the url line before sending more)
        if kind == KIND_RECORDS:
            live.tap(live_records(body, kite=bool(live.kite)))
        elif kind == KIND_BOOKS:
            live.restore(decode_batch(body))
        elif kind == KIND_TIMES:
            live.restore((), {k: (e, t) for k, (e, t) in json.loads(body).items()})

    pipe = _Pipe(on_frame)
    await loop.connect_read_pipe(lambda: pipe, sys.stdin.buffer)
    await asyncio.wait([config, pipe.done], return_when=asyncio.FIRST_COMPLETED)
    if not config.done():
        return 0  # the recorder went before it said anything
    doc = json.loads(config.result())
    # JSON lines on stderr: the recorder reads them and logs each where it logs (its console,
    # its --log-file), scrubbed there as here.
    configure_logging(doc["log_level"], json=True)
    try:
        server = Server(
            _options(doc["options"]), Path(doc["data_dir"]), ZoneInfo(doc["zone"]), live=True
        )
        url = await server.start()
    except ShrivenError as exc:
        print("error", str(exc).replace("\n", " "), flush=True)
        return 2
    print("url", url, flush=True)
    # What start-up made lives as long as the process: out of the collector's sight, a full
    # collection no longer walks it (about 47k objects, 5-12 ms: more than the whole latency
    # budget of a live message).
    gc.freeze()
    try:
        await pipe.done  # the recorder closed the pipe: it is stopping (or gone)
    finally:
        await server.stop()
    return 0


def main() -> int:
    # Ctrl-C reaches the whole process group: the recorder decides when the server stops (it
    # closes the pipe), so the last batches still go out.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return asyncio.run(_serve_from_pipe())


if __name__ == "__main__":
    sys.exit(main())

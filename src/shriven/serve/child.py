"""The live server's own process (``run --serve``): the recorder hands it each written batch as
the WAL's msgpack payload over a pipe (the child's stdin), and the child decodes and fans it out,
so no per-client work runs on the recorder's event loop.

Frames on the pipe: one byte of kind, four of length (big-endian), the body.

- ``C`` once, first: the server's options, store and zone as JSON (the API key travels here,
  never in argv or the environment);
- ``B``: ``events.encode_batch`` of the recorder's Binance books (``BookSnapshot`` records) as of
  the batch just written, sent before the first batch a (re)started child gets;
- ``R``: one written batch's payload, in WAL order.

The child prints ``url http://HOST:PORT`` (or ``error <one line>``) on stdout once, serves until
its stdin ends (the recorder stopped, or died) and then closes its clients with code 1001.

    python -m shriven.serve.child
"""

from __future__ import annotations

import asyncio
import json
import signal
import struct
import sys
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from shriven.errors import ShrivenError
from shriven.events import decode_batch
from shriven.logging import configure_logging, get_logger
from shriven.serve.options import ServeOptions
from shriven.serve.server import Server

__all__ = ["HEAD", "KIND_BOOKS", "KIND_CONFIG", "KIND_RECORDS", "child_config", "main"]

log = get_logger("shriven.serve")

HEAD: Final = struct.Struct(">cI")
KIND_CONFIG: Final = b"C"
KIND_BOOKS: Final = b"B"
KIND_RECORDS: Final = b"R"
_PIPE_LIMIT: Final = 1 << 20


def child_config(
    options: ServeOptions, data_dir: Path, zone: str, *, log_level: str, log_json: bool
) -> bytes:
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
    doc = {
        "options": fields,
        "data_dir": str(data_dir),
        "zone": zone,
        "log_level": log_level,
        "log_json": log_json,
    }
    return json.dumps(doc).encode()


def _options(fields: dict[str, object]) -> ServeOptions:
    key = fields.pop("api_key")
    cache = fields.pop("cache_dir")
    return ServeOptions(
        **fields,  # type: ignore[arg-type]
        api_key=SecretStr(str(key)) if key else None,
        cache_dir=Path(str(cache)) if cache else None,
    )


async def _read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    kind, n = HEAD.unpack(await reader.readexactly(HEAD.size))
    return kind, await reader.readexactly(n)


async def _serve_from_pipe() -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_PIPE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    try:
        kind, body = await _read_frame(reader)
    except asyncio.IncompleteReadError:
        return 0  # the recorder went before it said anything
    doc = json.loads(body)
    configure_logging(doc["log_level"], json=doc["log_json"])
    try:
        server = Server(
            _options(doc["options"]), Path(doc["data_dir"]), ZoneInfo(doc["zone"]), live=True
        )
        url = await server.start()
    except ShrivenError as exc:
        print("error", str(exc).replace("\n", " "), flush=True)
        return 2
    print("url", url, flush=True)
    live = server.core.live
    assert live is not None
    try:
        while True:
            kind, body = await _read_frame(reader)
            if kind == KIND_RECORDS:
                live.tap(decode_batch(body))
            elif kind == KIND_BOOKS:
                live.restore(decode_batch(body))
            # A read of buffered frames does not yield: let the fan-out send this batch before
            # the next is decoded (a backlog on the pipe would otherwise be decoded whole first).
            await asyncio.sleep(0)
    except asyncio.IncompleteReadError:
        pass  # the recorder closed the pipe: it is stopping (or gone)
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

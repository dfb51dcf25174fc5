"""``shriven tail``: records as they reach the stream, printed as replay's table, for people.

An ordered, ephemeral JetStream consumer from the next message on: what it shows is what the
stream stored (each record once, retries and all), not a second path beside it."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from typing import IO
from zoneinfo import ZoneInfo

import nats.errors
from nats.js.api import DeliverPolicy

from shriven.bus.connect import BusConfigError, connect
from shriven.bus.options import BusOptions, check_options
from shriven.errors import ConfigError
from shriven.events import Record, RecordDecodeError, decode_record
from shriven.replay.export import write_table


async def run_tail(
    options: BusOptions,
    subject: str,
    out: IO[str],
    zone: ZoneInfo,
    *,
    count: int | None = None,
    duration: float | None = None,
) -> int:
    """Print records on ``subject`` until cancelled, ``count`` records or ``duration`` s."""
    problem = check_options(options)
    if problem:
        raise ConfigError(problem)
    try:
        nc = await connect(options, name="shriven-tail", give_up_after_s=15)
    except BusConfigError as exc:
        raise ConfigError(str(exc)) from None
    rows: queue.Queue[Record | None] = queue.Queue(10_000)
    printed: list[int] = []
    printer = threading.Thread(
        target=lambda: printed.append(write_table(_drain(rows), out, zone, flush=True)),
        name="shriven-tail-print",
        daemon=True,
    )
    shown = 0
    deadline = None if duration is None else time.monotonic() + duration
    try:
        js = nc.jetstream(timeout=10)
        try:
            sub = await js.subscribe(
                subject,
                stream=options.stream,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.NEW,
            )
        except nats.js.errors.NotFoundError:
            raise ConfigError(
                f"no stream {options.stream} on NATS at {options.shown_urls}: start a "
                "`shriven run --publish` first or set SHRIVEN_NATS_STREAM"
            ) from None
        printer.start()  # the header once subscribed: what follows is live
        while (count is None or shown < count) and (
            deadline is None or time.monotonic() < deadline
        ):
            try:
                msg = await sub.next_msg(timeout=0.5)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            try:
                record = decode_record(msg.data)
            except (RecordDecodeError, ValueError):
                continue
            await asyncio.to_thread(rows.put, record)
            shown += 1
    finally:
        if printer.is_alive():
            rows.put(None)
            await asyncio.to_thread(printer.join, 5)
        with contextlib.suppress(Exception):
            await nc.close()
    return shown


def _drain(rows: queue.Queue[Record | None]) -> Iterator[Record]:
    while True:
        r = rows.get()
        if r is None:
            return
        yield r

"""``run --serve``'s recorder side: the live server runs in a child process
(:mod:`shriven.serve.child`), fed from the recorder's payload tap over a pipe, and restarted with
back-off when it dies.

What the recorder's loop does per written batch is one non-blocking pipe write of bytes the WAL
already encoded: the fan-out to every client (encoding each venue's messages, the queues, the
socket writes) happens in the child, on the other core. A child that dies, or falls so far
behind that ``max_backlog_bytes`` are unsent, is gone for the recorder: it records on, says so
on /health and in one log line, and starts a new child (same port), which gets the recorder's
books before its first batch so its depth snapshots are consistent with the stream at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Final

from shriven.errors import ConfigError
from shriven.events import (
    BINANCE_VENUES,
    BinanceFuturesDepth,
    BinanceFuturesDepthSnapshot,
    BookSnapshot,
    Record,
    encode_batch,
)
from shriven.feeds.connection import Backoff
from shriven.logging import get_logger
from shriven.serve.child import (
    HEAD,
    KIND_BOOKS,
    KIND_CONFIG,
    KIND_RECORDS,
    KIND_TIMES,
    child_config,
)
from shriven.serve.options import ServeOptions

__all__ = ["ServeProcess"]

log = get_logger("shriven.serve")

_START_TIMEOUT_S: Final = 60.0  # importing aiohttp and the server on a loaded machine
_STOP_TIMEOUT_S: Final = 5.0
_HEALTHY_AFTER_S: Final = 60.0  # a child that ran this long resets the back-off
# Unsent bytes on the pipe before the child is deemed stuck (at 2,000 Kite ticks/s the pipe
# carries about 0.5 MB/s: this is minutes of backlog).
DEFAULT_MAX_BACKLOG: Final = 64 * 1024 * 1024

BooksFn = Callable[[], Sequence[Record]]


def _parent_level() -> str:
    """The level the recorder logs at, for the child to log at too."""
    return logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()


def _log_child_line(line: bytes) -> None:
    """One line of the child's stderr, logged as the recorder's own event (its level, event and
    fields; a line that is not the child's JSON, a traceback say, as one warning each)."""
    text = line.decode(errors="replace").rstrip()
    if not text:
        return
    try:
        doc = json.loads(text)
        event = doc.pop("event")
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("live server process output", line=text[:500])
        return
    level = doc.pop("level", "info")
    doc.pop("timestamp", None)
    method = getattr(log, level if level in ("debug", "info", "warning", "error") else "info")
    method(str(event), process="serve", **{str(k): v for k, v in doc.items()})


class ServeProcess:
    """The live server's child process. :meth:`tap` is the recorder's payload tap."""

    def __init__(
        self,
        options: ServeOptions,
        data_dir: Path,
        zone: str,
        books: BooksFn,
        *,
        backoff: Backoff | None = None,
        max_backlog_bytes: int = DEFAULT_MAX_BACKLOG,
    ) -> None:
        options.check()
        self.options = options
        self.data_dir = Path(data_dir)
        self.zone = zone
        self._books = books
        self._backoff = backoff or Backoff(1.0, 30.0)
        self.max_backlog_bytes = max_backlog_bytes
        self.url = ""
        self.state = "stopped"  # starting | up | down | stopped
        self.restarts = 0
        self.last_exit: int | None = None
        self.batches_sent = 0
        self.batches_skipped = 0  # written while no child was up to take them
        self.pid: int | None = None
        self._port = options.port
        self._proc: asyncio.subprocess.Process | None = None
        self._pipe: asyncio.StreamWriter | None = None
        self._needs_books = True
        self._times: dict[str, tuple[int, int]] = {}  # futures book key -> its last (E, T)
        self._logs: asyncio.Task[None] | None = None
        self._started_at = 0.0
        self._retry_at = 0.0
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> str:
        """Start the child; returns its base URL. Raises ConfigError when it cannot serve (a
        port taken, say): the first start fails the run, as an in-process server would."""
        await self._spawn()
        self._watch = asyncio.create_task(self._supervise(), name="serve-process")
        return self.url

    async def _spawn(self) -> None:
        self.state = "starting"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shriven.serve.child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self._logs = asyncio.create_task(self._forward_logs(proc.stderr), name="serve-logs")
        opts = self.options
        if self._port != opts.port:  # a restart keeps the port the first child was given
            opts = replace(opts, port=self._port)
        body = child_config(opts, self.data_dir, self.zone, log_level=_parent_level())
        proc.stdin.write(HEAD.pack(KIND_CONFIG, len(body)) + body)
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), _START_TIMEOUT_S)
        except TimeoutError:
            line = b""
        word, _, rest = line.decode(errors="replace").strip().partition(" ")
        if word != "url":
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            self.state = "down"
            self.last_exit = proc.returncode
            raise ConfigError(rest or "the live server's process did not start")
        self.url = rest
        self._port = int(rest.rsplit(":", 1)[1])
        self._proc = proc
        self._pipe = proc.stdin
        self.pid = proc.pid
        self._needs_books = True
        self._started_at = time.monotonic()
        self.state = "up"
        log.info("live server process up", url=self.url, pid=proc.pid)

    async def _forward_logs(self, stderr: asyncio.StreamReader) -> None:
        """Until the child's stderr ends: it must never fill, or the child would block."""
        while True:
            try:
                line = await stderr.readline()
            except ValueError:  # a line over the reader's limit: dropped, the rest still read
                log.warning("live server process wrote an over-long log line; dropped")
                continue
            except ConnectionError:
                return
            if not line:
                return
            _log_child_line(line)

    async def _supervise(self) -> None:
        while not self._stopping:
            proc = self._proc
            assert proc is not None
            code = await proc.wait()
            self._pipe = None
            if self._stopping:
                return
            self.last_exit = code
            self.state = "down"
            if time.monotonic() - self._started_at >= _HEALTHY_AFTER_S:
                self._backoff.reset()
            while not self._stopping:
                delay = self._backoff.next_delay()
                self._retry_at = time.monotonic() + delay
                log.warning(
                    "live server process exited; recording goes on, restarting it",
                    exit_code=self.last_exit,
                    retry_in_s=round(delay, 1),
                )
                await asyncio.sleep(delay)
                if self._stopping:
                    return
                try:
                    await self._spawn()
                except (ConfigError, OSError) as exc:
                    self.state = "down"
                    log.warning("live server process failed to start", error=str(exc)[:200])
                    continue
                self.restarts += 1
                break

    def record_tap(self, batch: Sequence[Record]) -> None:
        """For ``Pipeline.add_tap(..., durable=False)``: note each futures book's last diff's
        event and transaction times (the recorder's books do not keep them), which a restarted
        child's depth answers carry before its first diff of the symbol."""
        times = self._times
        for r in batch:
            t = type(r)
            if t is BinanceFuturesDepth or t is BinanceFuturesDepthSnapshot:
                times[f"{r.venue}:{r.symbol}"] = (r.event_time, r.transaction_time)  # type: ignore[union-attr]

    def tap(self, payload: bytes) -> None:
        """For ``Pipeline.add_payload_tap``: hand one written batch to the child, never waiting."""
        pipe = self._pipe
        if pipe is None or self.state != "up":
            self.batches_skipped += 1
            return
        transport = pipe.transport
        if transport.is_closing():
            self.batches_skipped += 1
            return
        if transport.get_write_buffer_size() > self.max_backlog_bytes:
            self.batches_skipped += 1
            log.warning(
                "live server process fell behind the recorder; restarting it",
                unsent_bytes=transport.get_write_buffer_size(),
            )
            self._kill()
            return
        if self._needs_books:
            # The books already hold this batch: the new child starts from them, and serves
            # from the next batch on (it has no clients yet to send this one to).
            self._needs_books = False
            books = encode_batch(
                [b for b in self._books() if type(b) is BookSnapshot and b.venue in BINANCE_VENUES]
            )
            times = json.dumps(self._times).encode()
            transport.writelines(
                (HEAD.pack(KIND_BOOKS, len(books)), books, HEAD.pack(KIND_TIMES, len(times)), times)
            )
            return
        transport.writelines((HEAD.pack(KIND_RECORDS, len(payload)), payload))
        self.batches_sent += 1

    def _kill(self) -> None:
        self.state = "down"
        self._pipe = None
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()

    def health(self) -> tuple[dict[str, object], list[str]]:
        """The /health section ``serve`` and its problem line."""
        section: dict[str, object] = {
            "state": self.state,
            "url": self.url,
            "pid": self.pid if self.state == "up" else None,
            "restarts": self.restarts,
            "last_exit_code": self.last_exit,
            "batches_sent": self.batches_sent,
            "batches_skipped": self.batches_skipped,
        }
        problems = []
        if self.state in ("down", "starting") and not self._stopping:
            left = max(0.0, self._retry_at - time.monotonic())
            problems.append(
                f"live server down (exit code {self.last_exit}); restarting in {left:.0f} s"
            )
        return section, problems

    async def stop(self) -> None:
        """Close the pipe (the child closes its clients with 1001 and exits); kill it if it
        does not within a few seconds."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        proc, pipe = self._proc, self._pipe
        self._pipe = None
        if pipe is not None:
            with contextlib.suppress(OSError, RuntimeError):
                pipe.close()
        if proc is not None and proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), _STOP_TIMEOUT_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._logs is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._logs, _STOP_TIMEOUT_S)  # its last lines
        self.state = "stopped"

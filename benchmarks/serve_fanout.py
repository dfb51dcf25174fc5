"""`run --serve`: fan-out of a two-index Kite universe to 100 local clients, the recorder's own
ingest with and without them, and history replay as fast as a client reads.

The recorder is the real pipeline (queue, WAL with the default fsync policy, books) with the
server on its written-batch tap; an in-process generator plays the Kite socket as
benchmarks/ingest.py does (90 instruments, full packets, 50 a message). The clients are
plain-socket websocket connections read by one selector in a second process, each subscribing
every token in full mode.

- fan-out: the generator paced at ``--rate`` ticks/s for ``--seconds``; for every message a
  client got, the latency from the tick's receipt (``recv_ns``) to the client's read, and the
  part of it after the recorder handed the batch to its taps (what serving adds). Target: p99
  of the added latency <= 5 ms.
- ingest: the generator as fast as it can, ``--ticks`` ticks, without clients and with
  ``--clients`` subscribed to everything; records/s (wall and per CPU second of the recorder's
  process) and the ratio. Target: within 10%. Clients that cannot keep up are cut, not waited
  for, so the count of cut clients is printed too.
- history: one client reading the fan-out phase's store from /kite/history/.../max.

The server runs as ``run --serve`` runs it: in its own process, fed from the recorder's payload
tap over a pipe (``--in-process``: on the recorder's event loop, fed from its record tap, as
before). CPU is reported for the recorder's process and the server's separately.

    python benchmarks/serve_fanout.py [--clients 100] [--rate 2000] [--seconds 10] [--in-process]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import selectors
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from ingest import KITE_INSTRUMENTS, kite_messages, pct
from shriven.app.startup import wal_options
from shriven.config import PipelineConfig
from shriven.events import KiteTick, Record, SeqCounter
from shriven.feeds.kite.protocol import parse_message
from shriven.pipeline.daemon import Pipeline
from shriven.replay import load_zone
from shriven.serve import ServeOptions, Server
from shriven.serve.process import ServeProcess
from shriven.wal import StoreWriter

TARGET_P99_MS = 5.0
TARGET_INGEST_RATIO = 0.9
ZONE = load_zone("UTC")


def _key(message: bytes) -> tuple[int, int]:
    """(token, volume) of a message's first full packet: which recorded tick it carries."""
    return int.from_bytes(message[4:8], "big"), int.from_bytes(message[20:24], "big")


# ---------------------------------------------------------------- the clients' process
# Plain sockets and one selector, no websocket library: 100 websockets connections in one
# Python process could not read 2,000 ticks/s each on a shared 2-core machine (the last round's
# figures were that process's backlog), so the reader does the least a client can: the
# handshake, two masked text frames, and for each server frame (unmasked) its header and the
# first packet's token and volume.


def _handshake(host: str, port: int, path: str) -> socket.socket:
    sock = socket.create_connection((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit("the server closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit(f"handshake refused: {head.splitlines()[0]!r}")
    return sock


def _text_frame(text: str) -> bytes:
    """A client's (masked) text frame."""
    data = text.encode()
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    n = len(data)
    head = bytes((0x81, 0x80 | n)) if n < 126 else struct.pack("!BBH", 0x81, 0xFE, n)
    return head + mask + body


class _Reader:
    """One connection's unparsed bytes and what it read: (arrival ns, token, volume, packets)."""

    __slots__ = ("buf", "closed", "seen")

    def __init__(self) -> None:
        self.buf = b""
        self.seen: list[tuple[int, int, int, int]] = []
        self.closed: str | None = None

    def feed(self, data: bytes, now: int) -> None:
        buf = self.buf + data if self.buf else data
        at, end = 0, len(buf)
        seen = self.seen
        while end - at >= 2:
            opcode, n = buf[at] & 0x0F, buf[at + 1] & 0x7F
            head = 2
            if n == 126:
                if end - at < 4:
                    break
                n, head = int.from_bytes(buf[at + 2 : at + 4], "big"), 4
            elif n == 127:
                if end - at < 10:
                    break
                n, head = int.from_bytes(buf[at + 2 : at + 10], "big"), 10
            if end - at < head + n:
                break
            p = at + head
            if opcode == 2 and n > 1:
                seen.append((
                    now,
                    int.from_bytes(buf[p + 4 : p + 8], "big"),
                    int.from_bytes(buf[p + 20 : p + 24], "big"),
                    int.from_bytes(buf[p : p + 2], "big"),
                ))  # fmt: skip
            elif opcode == 8:
                self.closed = buf[p + 2 : p + n].decode(errors="replace") or "closed"
            at = p + n
        self.buf = buf[at:]


def _clients(url: str, n: int, seconds: float, tokens: list[int], out: Path) -> None:
    rest = url.split("://", 1)[1]
    hostport, _, path = rest.partition("/")
    host, port = hostport.rsplit(":", 1)
    sel = selectors.DefaultSelector()
    readers = []
    for _ in range(n):
        sock = _handshake(host, int(port), "/" + path)
        sock.sendall(_text_frame(json.dumps({"a": "subscribe", "v": tokens})))
        sock.sendall(_text_frame(json.dumps({"a": "mode", "v": ["full", tokens]})))
        sock.setblocking(False)
        r = _Reader()
        readers.append(r)
        sel.register(sock, selectors.EVENT_READ, r)
    out.with_suffix(".ready").write_text("ready")
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        for key, _ in sel.select(min(left, 0.5)):
            try:
                data = key.fileobj.recv(1 << 20)  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            r = key.data
            if not data:
                sel.unregister(key.fileobj)
                r.closed = r.closed or "closed"
                continue
            r.feed(data, time.time_ns())
    doc = {"seen": [r.seen for r in readers], "closed": [r.closed for r in readers if r.closed]}
    out.write_text(json.dumps(doc))


def start_clients(
    url: str, n: int, seconds: float, tokens: list[int], out: Path
) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--client-mode", url, str(n), str(seconds), str(out)]
    proc = subprocess.Popen([*cmd, *map(str, tokens)])
    deadline = time.monotonic() + 60
    while not out.with_suffix(".ready").exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("the clients did not start")
        time.sleep(0.05)
    return proc


# ---------------------------------------------------------------- the recorder's process


class _Served:
    """The server beside a benchmark recorder: in its own process (as ``run --serve``) or on
    the recorder's loop; its URL, CPU seconds and slow-client cuts either way."""

    def __init__(self, p: Pipeline, data_dir: Path, in_process: bool) -> None:
        self.in_process = in_process
        self.server: Server | ServeProcess
        if in_process:
            self.server = Server(ServeOptions(port=0), data_dir, ZONE, live=True)
        else:
            books = p.writer.books
            self.server = ServeProcess(
                ServeOptions(port=0), data_dir, "UTC",
                lambda: books.snapshots(time.time_ns(), SeqCounter()),
            )  # fmt: skip
        self.pipeline = p

    async def start(self) -> str:
        url = await self.server.start()
        if isinstance(self.server, Server):
            self.pipeline.add_tap(self.server.tap, durable=False)
        else:
            self.pipeline.add_payload_tap(self.server.tap, prompt=True)
            self.pipeline.add_tap(self.server.record_tap, durable=False)
        return url

    def cpu(self) -> float:
        """The server process's CPU seconds so far (0: it runs in the recorder's)."""
        if isinstance(self.server, Server) or self.server.pid is None:
            return 0.0
        fields = Path(f"/proc/{self.server.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def _metrics(self) -> list[str]:
        import aiohttp

        async with aiohttp.ClientSession() as s, s.get(self.server.url + "/metrics") as r:
            return (await r.text()).splitlines()

    async def cut(self) -> int:
        """Clients cut as slow, from the server's /metrics."""
        for line in await self._metrics():
            if line.startswith("shriven_serve_disconnects_total") and 'reason="slow"' in line:
                return int(float(line.rsplit(" ", 1)[1]))
        return 0

    async def latency(self) -> str:
        """The server's own histogram (receipt -> written to a client socket), summarised."""
        buckets: list[tuple[float, float]] = []
        for line in await self._metrics():
            if line.startswith("shriven_serve_latency_seconds_bucket"):
                le = line.split('le="', 1)[1].split('"', 1)[0]
                buckets.append((float(le), float(line.rsplit(" ", 1)[1])))
        total = buckets[-1][1] if buckets else 0
        if not total:
            return "no messages"

        def upto(q: float) -> str:
            bound = next(b for b, n in buckets if n >= q * total)
            return f"<= {bound * 1e3:g} ms" if bound != float("inf") else "> 1 s"

        within5 = next(n for b, n in buckets if b >= 0.005) / total
        return f"{within5:.1%} within 5 ms, p50 {upto(0.5)}, p99 {upto(0.99)}"

    async def stop(self) -> None:
        await self.server.stop()


async def _recorder(data_dir: Path, in_process: bool) -> tuple[Pipeline, _Served]:
    cfg = PipelineConfig(data_dir=data_dir, snapshot_interval_secs=60)
    p = Pipeline(cfg, open_store=lambda: StoreWriter(data_dir, wal_options(cfg)), health_port=None)
    served = _Served(p, data_dir, in_process)
    await served.start()
    return p, served


async def _generate(p: Pipeline, messages: Sequence[bytes], rate: float | None) -> int:
    q = p.queue
    seq = SeqCounter()
    interval = 50 / rate if rate else 0.0
    next_at = time.perf_counter()
    total = 0
    for m in messages:
        if interval:
            next_at += interval
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        for r in parse_message(m, time.time_ns(), seq):
            await q.put(r)
            total += 1
        await asyncio.sleep(0)
    return total


async def fan_out(
    data_dir: Path, tokens: list[int], clients: int, rate: float, seconds: float, in_process: bool
) -> tuple[int, int]:
    p, served = await _recorder(data_dir, in_process)
    handed: dict[tuple[int, int], tuple[int, int]] = {}  # (token, volume) -> (recv_ns, tap_ns)

    def note(batch: Sequence[Record]) -> None:
        now = time.time_ns()
        for r in batch:
            if type(r) is KiteTick:
                handed[(r.instrument_token, r.volume_traded)] = (r.recv_ns, now)

    # Record taps run before payload taps, and an in-process server's tap was added first: the
    # time noted is when the batch was handed over to be served (payload tap: just before).
    p.add_tap(note, durable=False)
    await p.start()
    out = data_dir.parent / "fanout.json"
    url = served.server.url.replace("http", "ws") + "/kite"
    proc = await asyncio.to_thread(start_clients, url, clients, seconds + 2, tokens, out)
    messages = kite_messages(int(rate * seconds))
    t0, cpu0, child0 = time.perf_counter(), time.process_time(), served.cpu()
    n = await _generate(p, messages, rate)
    elapsed = time.perf_counter() - t0
    await asyncio.sleep(0.5)  # the last batches reach the clients
    cpu, child_cpu = time.process_time() - cpu0, served.cpu() - child0
    await asyncio.to_thread(proc.wait)
    histogram = await served.latency()
    p.request_stop("benchmark")
    await p.shutdown()
    await served.stop()
    doc = json.loads(out.read_text())
    total, added = [], []
    before_tap = [tap - recv for recv, tap in handed.values()]
    got = packets = 0
    for per_client in doc["seen"]:
        for arrival, token, volume, in_message in per_client:
            at = handed.get((token, volume))
            if at is not None:
                total.append(arrival - at[0])
                added.append(arrival - at[1])
            packets += in_message
        got += len(per_client)
    print(
        f"fan-out: {n:,} ticks at {n / elapsed:,.0f} ticks/s over {KITE_INSTRUMENTS} instruments "
        f"to {clients} clients: {got:,} messages read ({packets:,} ticks of {n * clients:,}), "
        f"{len(doc['closed'])} clients cut"
    )
    print(
        f"  receipt -> client read:      p50 {pct(total, 0.5):6.2f} ms, p99 {pct(total, 0.99):6.2f}"
        " ms (includes the recorder's batching and WAL write)"
    )
    print(
        f"  receipt -> tap (the recorder's batch window, WAL write, books): p50 "
        f"{pct(before_tap, 0.5):6.2f} ms, p99 {pct(before_tap, 0.99):6.2f} ms"
    )
    print(
        f"  added by serving (tap -> client read): p50 {pct(added, 0.5):6.2f} ms, "
        f"p99 {pct(added, 0.99):6.2f} ms; target p99 <= {TARGET_P99_MS} ms: "
        f"{'met' if pct(added, 0.99) <= TARGET_P99_MS else 'not met'}"
    )
    where = "on the recorder's loop" if in_process else "in its own process"
    print(
        f"  CPU (server {where}): recorder process {cpu:.2f} s ({cpu / n * 1e6:,.1f} us per "
        f"tick), server process {child_cpu:.2f} s, for {n:,} ticks and {got:,} client "
        "messages (the machine's load decides the latencies above; CPU does not depend on it)"
    )
    print(f"  server's own histogram (receipt -> written to the socket): {histogram}")
    print(f"  load average: {os.getloadavg()[0]:.1f}")
    return n, got


async def ingest(
    data_dir: Path, tokens: list[int], clients: int, ticks: int, in_process: bool
) -> tuple[float, float, int]:
    p, served = await _recorder(data_dir, in_process)
    await p.start()
    proc = None
    if clients:
        out = data_dir.parent / f"ingest-{clients}.json"
        url = served.server.url.replace("http", "ws") + "/kite"
        proc = await asyncio.to_thread(start_clients, url, clients, 600, tokens, out)
    messages = kite_messages(ticks)
    cpu0, t0 = time.process_time(), time.perf_counter()
    n = await _generate(p, messages, None)
    deadline = time.monotonic() + 120
    while p.stats.records_written < n + 1:
        if time.monotonic() > deadline:
            raise SystemExit(
                f"serve_fanout: only {p.stats.records_written:,} of {n + 1:,} records written "
                "after 120 s; the recorder stopped taking records"
            )
        await asyncio.sleep(0.001)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    cut = await served.cut()
    if proc is not None:
        proc.kill()
    p.request_stop("benchmark")
    await p.shutdown()
    await served.stop()
    return n / wall, n / cpu, cut


async def history(data_dir: Path, tokens: list[int]) -> None:
    server = Server(ServeOptions(port=0), data_dir, ZONE, live=False)
    await server.start()
    far = datetime(2100, 1, 1, tzinfo=UTC).strftime("%Y-%m-%dT%H:%MZ")
    url = server.url.replace("http", "ws") + f"/kite/history/2000-01-01T00:00Z/{far}/max"
    out = data_dir.parent / "history.json"
    proc = await asyncio.to_thread(start_clients, url, 1, 8, tokens, out)
    await asyncio.to_thread(proc.wait)
    await server.stop()
    seen = json.loads(out.read_text())["seen"][0]
    if len(seen) < 2:
        print("history: nothing read")
        return
    span = (seen[-1][0] - seen[0][0]) / 1e9
    packets = sum(s[3] for s in seen)
    print(
        f"history at max speed, one client: {len(seen):,} messages in {span:.2f} s = "
        f"{len(seen) / span:,.0f} messages/s ({packets / span:,.0f} ticks/s)"
    )


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--rate", type=float, default=2_000.0, help="ticks/s in the fan-out phase")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--ticks", type=int, default=200_000, help="ticks in each ingest run")
    ap.add_argument(
        "--in-process", action="store_true", help="the server on the recorder's loop (as before)"
    )
    ap.add_argument(
        "--phases", default="fanout,ingest,history", help="which of fanout,ingest,history to run"
    )
    args = ap.parse_args()
    phases = set(args.phases.split(","))
    inp = args.in_process
    tokens = [(12_000_000 + i * 256) | 2 for i in range(KITE_INSTRUMENTS)]  # ingest.py's
    with tempfile.TemporaryDirectory(prefix="shriven-serve-") as tmp:
        root = Path(tmp)
        fan = root / "fan" / "market"
        if "fanout" in phases or "history" in phases:
            await fan_out(fan, tokens, args.clients, args.rate, args.seconds, inp)
        if "ingest" in phases:
            alone, alone_cpu, _ = await ingest(root / "i0" / "market", tokens, 0, args.ticks, inp)
            served, served_cpu, cut = await ingest(
                root / "i1" / "market", tokens, args.clients, args.ticks, inp
            )
            ratio = served / alone
            print(
                f"ingest, {args.ticks:,} ticks as fast as possible: {alone:,.0f} ticks/s alone "
                f"({alone_cpu:,.0f} per CPU s), {served:,.0f} ticks/s with {args.clients} clients"
                f" ({served_cpu:,.0f} per CPU s; {cut} clients cut as slow): {ratio:.2f}x; target"
                f" >= {TARGET_INGEST_RATIO}: {'met' if ratio >= TARGET_INGEST_RATIO else 'not met'}"
            )
            print(f"  load average: {os.getloadavg()[0]:.1f}")
        if "history" in phases:
            await history(fan, tokens)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client-mode":
        url, n, seconds, out = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), Path(sys.argv[5])
        _clients(url, n, seconds, [int(t) for t in sys.argv[6:]], out)
    else:
        asyncio.run(main())

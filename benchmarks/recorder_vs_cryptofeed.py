"""The whole recorder against cryptofeed: CPU microseconds per message of the same Binance stream.

A loopback server (this process) plays Binance: ``GET /api/v3/depth`` answers the recorded
BTCUSDT snapshot, ``/api/v3/exchangeInfo`` lists BTCUSDT, and the combined stream replays the
recorded diffs and trades (tests/fixtures/binance/hftbacktest_spot_btcusdt_20240808, merged in
event-time order, looped with update and trade ids moved on so the sequence continues) as fast
as the client reads them. After the first diff it pauses until the client has fetched its
snapshot, as a client that buffers and then syncs needs.

Contestants, each a child process pinned to one core:

  shriven     the real ``shriven run --venue binance --symbols BTCUSDT`` pointed at the server
              (durable checksummed WAL with the default fsync policy, books, snapshots,
              health server); stopped with SIGINT once /metrics shows every record written
  cryptofeed  cryptofeed's Binance feed (its books in the order-book C extension) with an L2
              book and a trades callback that only count; it stops at the last trade

The figure is the child's CPU time (user + system, from the kernel) for a long stream minus
that for a short one, divided by the extra messages: start-up and shutdown cancel out.

Needs the peers: ``pip install -e .[bench]``.
Run:  python benchmarks/recorder_vs_cryptofeed.py [--messages 60000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from aiohttp import web

FIXTURE = (
    Path(__file__).resolve().parents[1]
    / "tests"
    / "fixtures"
    / "binance"
    / "hftbacktest_spot_btcusdt_20240808"
)
SYMBOL = "BTCUSDT"
TARGET = 0.5  # shriven's CPU per message at most half of cryptofeed's


def recorded() -> tuple[dict, list[dict]]:
    snapshot = json.loads((FIXTURE / "depth_snapshot_BTCUSDT.json").read_text())
    msgs = [json.loads(line) for name in ("depth_diff", "trade")
            for line in (FIXTURE / f"{name}_BTCUSDT.jsonl").read_text().splitlines()]  # fmt: skip
    msgs.sort(key=lambda m: m["data"]["E"])
    return snapshot, msgs


def stream(snapshot: dict, msgs: list[dict], n: int, agg: bool = False) -> list[str]:
    """``n`` messages: the recording looped, each loop's ids moved on by the recording's span.
    ``agg``: trades as the ``aggTrade`` events cryptofeed subscribes to instead (same fields,
    one trade per aggregate)."""
    diffs = [m["data"] for m in msgs if m["data"]["e"] == "depthUpdate"]
    trades = [m["data"] for m in msgs if m["data"]["e"] == "trade"]
    id_span = diffs[-1]["u"] - diffs[0]["U"] + 1
    trade_span = trades[-1]["t"] - trades[0]["t"] + 1
    ms_span = msgs[-1]["data"]["E"] - msgs[0]["data"]["E"] + 100
    out: list[str] = []
    loop = 0
    while len(out) < n:
        for m in msgs:
            d = dict(m["data"])
            d["E"] += loop * ms_span
            name = m["stream"]
            if d["e"] == "depthUpdate":
                d["U"] += loop * id_span
                d["u"] += loop * id_span
            else:
                d["t"] += loop * trade_span
                d["T"] += loop * ms_span
                if agg:
                    t = d.pop("t")
                    d.update(e="aggTrade", a=t, f=t, l=t)
                    name = "btcusdt@aggTrade"
            out.append(json.dumps({"stream": name, "data": d}, separators=(",", ":")))
            if len(out) == n:
                break
        loop += 1
    # the last message is a trade, so that cryptofeed's counter knows it has seen everything
    while json.loads(out[-1])["data"]["e"] not in ("trade", "aggTrade"):
        out.pop()
    return out


class Venue:
    """The loopback Binance: one stream of messages per connection, REST snapshots."""

    def __init__(self, snapshot: dict, messages: list[str], tls: ssl.SSLContext) -> None:
        self.tls = tls
        self.snapshot = json.dumps(snapshot)
        self.messages = messages
        self.snapshot_served = asyncio.Event()
        self.sent = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v3/depth", self._depth)
        app.router.add_get("/api/v3/exchangeInfo", self._info)
        app.router.add_get("/stream", self._stream)
        app.router.add_get("/ws", self._stream)
        app.router.add_get("/ws/{tail:.*}", self._stream)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.tls)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _depth(self, request: web.Request) -> web.Response:
        self.snapshot_served.set()
        return web.Response(text=self.snapshot, content_type="application/json")

    async def _info(self, request: web.Request) -> web.Response:
        body = {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "rateLimits": [],
            "symbols": [
                {
                    "symbol": SYMBOL,
                    "status": "TRADING",
                    "baseAsset": "BTC",
                    "quoteAsset": "USDT",
                    "filters": [
                        {"filterType": "PRICE_FILTER", "tickSize": "0.01000000"},
                        {"filterType": "LOT_SIZE", "stepSize": "0.00001000"},
                    ],
                }
            ],
        }
        return web.json_response(body)

    async def _stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        # a SUBSCRIBE request (if the client sends one) is answered; the stream starts anyway
        reader = asyncio.ensure_future(self._answer(ws))
        try:
            messages = self.messages
            await ws.send_str(messages[0])
            await asyncio.wait_for(self.snapshot_served.wait(), 30)
            await asyncio.sleep(0.2)  # the snapshot's answer reaches the client first
            for m in messages[1:]:
                await ws.send_str(m)
                self.sent += 1
            self.sent += 1
            await reader  # idle until the client goes (its reads end with the connection)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            reader.cancel()
        return ws

    async def _answer(self, ws: web.WebSocketResponse) -> None:
        async for msg in ws:
            try:
                req = json.loads(msg.data)
                await ws.send_str(json.dumps({"result": None, "id": req.get("id")}))
            except (ValueError, AttributeError, ConnectionError):
                continue


def _pin(core: int) -> None:
    os.sched_setaffinity(0, {core})


def child_cpu(before: resource.struct_rusage) -> float:
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


async def run_shriven(venue: Venue, n: int, core: int) -> float:
    with tempfile.TemporaryDirectory(prefix="shriven-vs-cf-") as tmp:
        health = _free_port()
        env = {
            **os.environ,
            "SHRIVEN_BINANCE_API_ROOT": f"https://127.0.0.1:{venue.port}",
            "SHRIVEN_BINANCE_WS_URL": f"wss://127.0.0.1:{venue.port}",
            "SHRIVEN_CONFIG_FILE": os.devnull,
        }
        cmd = [
            sys.executable, "-m", "shriven", "run", "--venue", "binance", "--symbols",
            SYMBOL, "--data-dir", str(Path(tmp) / "data"), "--health-port", str(health),
            "--quiet",
        ]  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.Popen(
            cmd,
            cwd=tmp,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: _pin(core),
        )
        try:
            deadline = time.monotonic() + 600
            # every message is a record (diff or trade), plus the snapshot and status markers
            while _written(health) < n and time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"shriven run exited early ({proc.returncode})")
                await asyncio.sleep(0.25)
            proc.send_signal(signal.SIGINT)
            await asyncio.get_running_loop().run_in_executor(None, proc.wait, 60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return child_cpu(before)


def _written(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith('shriven_records_written_total{stream="binance"}'):
            return int(float(line.split()[-1]))
    return 0


CRYPTOFEED_CHILD = r"""
import os, sys
from cryptofeed import FeedHandler
from cryptofeed.defines import L2_BOOK, TRADES
from cryptofeed.exchanges import Binance
from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint

port, last_trade = int(sys.argv[1]), int(sys.argv[2])
root = f"https://127.0.0.1:{port}"

class LoopbackBinance(Binance):
    ws = f"wss://127.0.0.1:{port}"
    websocket_endpoints = [WebsocketEndpoint(ws, sandbox=ws, options={"compression": None})]
    routes = Routes("/api/v3/exchangeInfo", l2book="/api/v3/depth?symbol={}&limit={}")
    rest_endpoints = [RestEndpoint(root, sandbox=root, routes=routes)]

seen = [0, 0]

async def book(b, receipt_ts):
    seen[0] += 1

async def trade(t, receipt_ts):
    seen[1] += 1
    if int(t.id) >= last_trade:
        print(seen[0], seen[1], flush=True)
        os._exit(0)

fh = FeedHandler(config={"log": {"filename": os.devnull, "level": "CRITICAL"}, "uvloop": False})
callbacks = {L2_BOOK: book, TRADES: trade}
fh.add_feed(LoopbackBinance(symbols=["BTC-USDT"], channels=[L2_BOOK, TRADES], callbacks=callbacks))
fh.run()
"""


async def run_cryptofeed(venue: Venue, last_trade: int, core: int) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CRYPTOFEED_CHILD,
        str(venue.port),
        str(last_trade),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: _pin(core),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 600)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0 or not out.strip():
        tail = err.decode(errors="replace")[-2000:]
        raise RuntimeError(f"cryptofeed child failed ({proc.returncode}):\n{tail}")
    return child_cpu(before)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loopback_tls(directory: Path) -> ssl.SSLContext:
    """A self-signed certificate for 127.0.0.1: both clients speak wss/https as to Binance and
    trust it through SSL_CERT_FILE / REQUESTS_CA_BUNDLE."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    os.environ["SSL_CERT_FILE"] = str(cert)  # inherited by the children
    os.environ["REQUESTS_CA_BUNDLE"] = str(cert)
    return ctx


async def measure(
    name: str, snapshot: dict, messages: list[str], core: int, tls: ssl.SSLContext
) -> float:
    venue = Venue(snapshot, messages, tls)
    await venue.start()
    try:
        if name == "shriven":
            return await run_shriven(venue, len(messages), core)
        last_trade = max(json.loads(m)["data"]["a"] for m in messages if '"aggTrade"' in m)
        return await run_cryptofeed(venue, last_trade, core)
    finally:
        await venue.stop()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=60_000)
    ap.add_argument("--short", type=int, default=5_000, help="the start-up run's messages")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    started = time.perf_counter()
    cores = sorted(os.sched_getaffinity(0))
    _pin(cores[0])  # the server; contestants get another core when there is one
    child_core = cores[-1]
    snapshot, msgs = recorded()
    streams = {
        "shriven": (stream(snapshot, msgs, args.messages), stream(snapshot, msgs, args.short)),
        "cryptofeed": (
            stream(snapshot, msgs, args.messages, agg=True),
            stream(snapshot, msgs, args.short, agg=True),
        ),
    }
    long, short = streams["shriven"]
    extra = len(long) - len(short)
    tmp = tempfile.TemporaryDirectory(prefix="shriven-vs-cf-tls-")
    tls = loopback_tls(Path(tmp.name))
    per_msg: dict[str, list[float]] = {"shriven": [], "cryptofeed": []}
    for _ in range(args.repeats):
        for name in per_msg:  # taking turns, so machine noise hits both alike
            n_long, n_short = streams[name]
            cpu_long = await measure(name, snapshot, n_long, child_core, tls)
            cpu_short = await measure(name, snapshot, n_short, child_core, tls)
            per_msg[name].append((cpu_long - cpu_short) / extra * 1e6)
    print(
        f"recorder_vs_cryptofeed: {len(long):,} recorded BTCUSDT messages (diffs and trades) "
        f"minus a {len(short):,}-message start-up run, CPU of the child (user + system), "
        f"median of {args.repeats}\n"
    )
    med = {k: statistics.median(v) for k, v in per_msg.items()}
    for name, v in per_msg.items():
        runs = ", ".join(f"{x:.1f}" for x in v)
        print(f"{name:11s} {med[name]:7.1f} us CPU per message   (runs: {runs})")
    ratio = med["shriven"] / med["cryptofeed"]
    verdict = "meets" if ratio <= TARGET else "misses"
    print(f"\nshriven / cryptofeed: {ratio:.2f}x the CPU per message (target <= {TARGET}x: "
          f"{verdict})")  # fmt: skip
    print(f"(total {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    asyncio.run(main())

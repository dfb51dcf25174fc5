"""The bus over TLS: the publisher's HPUB bursts and the sink's raw pull deliveries and acks go
through nats-py's TLS connection like its own messages (a real nats-server with a certificate
made for the test)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from shriven.bus.options import BusOptions, Credentials
from shriven.bus.publisher import Publisher
from shriven.bus.sink import SinkStats, run_sink
from shriven.events import BinanceTrade, Record, Status
from shriven.wal import WalReader

from .conftest import NatsServer

N = 300


def _certificate(root: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def _records() -> list[Record]:
    start = time.time_ns()
    trades = [
        BinanceTrade(start + s, s, "BTCUSDT", s, "1.0", "2.0", s, s, False) for s in range(1, N)
    ]
    return [Status(start, 1, "system", "started"), *trades]


async def _publish_and_sink(
    options: BusOptions, records: list[Record], data: Path, archive: Path
) -> SinkStats:
    p = Publisher(options, data)
    task = asyncio.create_task(p.run())
    for _ in range(200):
        if p.stats.connected:
            break
        await asyncio.sleep(0.05)
    for i in range(0, N, 100):
        p.tap(records[i : i + 100])
    for _ in range(200):
        if p.stats.acked >= N:
            break
        await asyncio.sleep(0.05)
    await p.close()
    task.cancel()
    stats = SinkStats()
    stop = asyncio.Event()

    async def until_stored() -> None:
        for _ in range(200):
            if stats.stored >= N:
                break
            await asyncio.sleep(0.05)
        stop.set()

    watcher = asyncio.create_task(until_stored())
    await run_sink(options, archive, durable="tls", stop=stop, stats=stats, duration=20)
    await watcher
    return stats


def test_publisher_and_sink_carry_every_record_once_over_tls(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    server = NatsServer(tmp_path, "tls", extra=["--tls", "--tlscert", str(cert),
                                                "--tlskey", str(key)])  # fmt: skip
    server.start()
    try:
        options = BusOptions(
            urls=(f"tls://127.0.0.1:{server.port}",),
            recorder="rec1",
            credentials=Credentials(tls_ca_file=cert),
        )
        records = _records()
        stats = asyncio.run(_publish_and_sink(options, records, tmp_path / "m", tmp_path / "arch"))
    finally:
        server.stop()
    assert (stats.stored, stats.duplicates, stats.refused) == (N, 0, 0)
    assert list(WalReader(tmp_path / "arch" / "rec1" / "ticks").records()) == records

"""One `shriven run --sim` for the tests of this package (dashboards, alert rules, monitor): a
real recorder process whose /health and /metrics they read, stopped at the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="package")
def sim_recorder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL (http://127.0.0.1:PORT) of a running `run --sim`."""
    home = tmp_path_factory.mktemp("sim")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHRIVEN_", "ZERODHA_"))}
    env.update(
        SHRIVEN_CONFIG_FILE=os.devnull,
        SHRIVEN_CACHE_DIR=str(home / "cache"),
        SHRIVEN_PIPELINE__SPOT_SYMBOLS='["NIFTY 50"]',
        SHRIVEN_PIPELINE__OPTION_STRIKE_RANGE="3",
    )
    cmd = [sys.executable, "-m", "shriven", "--log-json", "run", "--sim", "--quiet"]
    cmd += ["--health-port", "0", "--data-dir", str(home / "data"), "--sim-rate", "500"]
    cmd += ["--duration", "240"]  # bounded even if the test never stops it
    proc = subprocess.Popen(
        cmd, cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    url: list[str] = []
    seen = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if not url and "health server listening" in line:
                url.append(json.loads(line)["url"])
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 90
        while not seen.wait(0.2):
            assert proc.poll() is None, "run --sim exited before serving /health"
            assert time.monotonic() < deadline, "run --sim did not serve /health in 90 s"
        yield url[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)


def wait_for_data(url: str, timeout: float = 60.0) -> dict:
    """/health once both simulated feeds are connected and records were written."""
    import requests

    deadline = time.monotonic() + timeout
    report: dict = {}
    while time.monotonic() < deadline:
        report = requests.get(f"{url}/health", timeout=5).json()
        feeds = report.get("feeds", {})
        if (
            feeds
            and all(f["connected"] for f in feeds.values())
            and report["wal"]["records_written"] > 0
        ):
            return report
        time.sleep(0.2)
    raise AssertionError(f"the simulated feeds never all connected: {report}")


def metric_names(text: str) -> set[str]:
    """Sample names in Prometheus text exposition (``name{labels} value`` / ``name value``)."""
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names


FIXTURE_DIR = Path(__file__).parent

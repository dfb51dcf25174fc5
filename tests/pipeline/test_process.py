"""`shriven run --sim` as a real process: SIGTERM loses nothing, SIGKILL then restart recovers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shriven.events import KiteTick, Record, Status, StatusKind, stream_of
from shriven.wal import read_records


def start(
    tmp_path: Path, data: Path, *extra: str, env_extra: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["SHRIVEN_CACHE_DIR"] = str(tmp_path / "cache")
    env["SHRIVEN_PIPELINE__SPOT_SYMBOLS"] = '["NIFTY 50"]'
    env["SHRIVEN_PIPELINE__OPTION_STRIKE_RANGE"] = "5"
    env["SHRIVEN_PIPELINE__FSYNC_INTERVAL_MS"] = "50"
    env.update(env_extra or {})
    cmd = [sys.executable, "-m", "shriven", "run", "--sim", "--quiet", "--health-port", "-1"]
    cmd += ["--data-dir", str(data), "--sim-rate", "20000", *extra]
    return subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def wait_for_records(
    data: Path, n: int, proc: subprocess.Popen[bytes], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        ticks = data / "ticks"
        if ticks.is_dir():
            size = sum(p.stat().st_size for p in ticks.glob("*.wal"))
            if size > n * 60:  # roughly n compressed ticks
                return
        time.sleep(0.1)
    raise AssertionError("the recorder wrote too little in time")


def assert_streams_unbroken(records: list[Record]) -> None:
    """Within one run every stream's seq numbers are consecutive: nothing dropped on the way."""
    by_stream: dict[str, list[int]] = {}
    for r in records:
        by_stream.setdefault(stream_of(r), []).append(r.seq)
    for stream, seqs in by_stream.items():
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), stream


def test_sigterm_during_a_busy_run_drains_everything_received_and_exits_0(tmp_path: Path) -> None:
    data = tmp_path / "market"
    proc = start(tmp_path, data)
    try:
        wait_for_records(data, 5_000, proc)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out.decode()
    records = list(read_records(data / "ticks"))
    statuses = [r for r in records if type(r) is Status]
    assert statuses[0].kind == StatusKind.STARTED
    assert statuses[-1].kind == StatusKind.STOPPED
    assert json.loads(statuses[-1].detail) == {"reason": "SIGTERM"}
    # Each adapter's own stop marker is there, after all of its data.
    for venue in ("kite", "binance"):
        mine = [r for r in records if stream_of(r) == venue]
        assert mine, venue
    kite = [r for r in records if stream_of(r) == "kite"]
    assert type(kite[-1]) is Status and kite[-1].kind == StatusKind.DISCONNECTED
    assert sum(type(r) is KiteTick for r in records) >= 2_000
    assert_streams_unbroken(records)
    assert (data / "metadata.json").is_file()


def test_sigkill_then_restart_recovers_the_wal_and_keeps_every_complete_frame(
    tmp_path: Path,
) -> None:
    data = tmp_path / "market"
    proc = start(tmp_path, data)
    try:
        wait_for_records(data, 5_000, proc)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # What a tolerant reader finds now: every complete frame, a torn tail skipped.
    before = list(read_records(data / "ticks", strict=False))
    assert len(before) > 1_000
    assert_streams_unbroken(before)

    proc = start(tmp_path, data, "--duration", "3")
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out.decode()
    after = list(read_records(data / "ticks"))  # strict: recovery left no damage behind
    assert after[: len(before)] == before
    second_run = after[len(before) :]
    assert type(second_run[0]) is Status and second_run[0].kind == StatusKind.STARTED
    assert type(second_run[-1]) is Status and second_run[-1].kind == StatusKind.STOPPED
    assert_streams_unbroken(second_run)
    segments = sorted((data / "ticks").glob("segment_*.wal"))
    assert len(segments) >= 2  # the restart carried on in a new segment


def test_a_second_ctrl_c_exits_at_once_and_the_next_start_recovers(tmp_path: Path) -> None:
    data = tmp_path / "market"
    # A writer far slower than the feed (an fsync per 10 records) keeps a long backlog, so the
    # graceful stop the first Ctrl-C starts is still draining when the second arrives.
    slow = {"SHRIVEN_PIPELINE__FSYNC_POLICY": "always", "SHRIVEN_PIPELINE__BATCH_MAX_RECORDS": "10"}
    proc = start(tmp_path, data, env_extra=slow)
    assert proc.stdout is not None
    try:
        wait_for_records(data, 500, proc)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        seen = b""
        for line in iter(proc.stdout.readline, b""):  # ends if the process exits
            seen += line
            if b"press Ctrl-C again" in line:
                break
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        out = seen + out
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out.decode()
    assert b"exiting at once" in out
    proc = start(tmp_path, data, "--duration", "2")
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out.decode()
    records = list(read_records(data / "ticks"))  # strict: nothing damaged is left
    started = [r for r in records if type(r) is Status and r.kind == StatusKind.STARTED]
    assert len(started) == 2

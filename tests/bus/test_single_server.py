"""One real nats-server: a `run --sim --publish` sunk into an archive equals the recorder's WAL
record for record; `tail` shows live records; a server that appears late gets everything."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from shriven.wal import read_records

from .conftest import (
    NatsServer,
    finish,
    free_port,
    keyed,
    published,
    recorder_env,
    sink_until,
    start_recorder,
    wait_until,
    wal_records,
)


def test_a_published_run_sunk_into_an_archive_equals_the_recorders_wal(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    data, archive = tmp_path / "market", tmp_path / "archive"
    env = recorder_env(
        tmp_path, SHRIVEN_NATS_STREAM="ONE", SHRIVEN_PIPELINE__SNAPSHOT_INTERVAL_SECS="1"
    )
    rec = start_recorder(tmp_path, data, nats_server.url, env=env)
    try:
        wait_until("the first acks", lambda: published(data, "ONE") > 0, timeout=60)
        tail = subprocess.Popen(
            [sys.executable, "-m", "shriven", "tail", nats_server.url, "--type", "kite_tick",
             "--count", "5", "--duration", "60", "--tz", "UTC"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        tail_out, tail_err = tail.communicate(timeout=90)
        # a tail that starts fast sees its 5 ticks within a second or two: record for long
        # enough that the archive check below has a run of books and snapshots to compare
        wait_until(
            "1,000 records and 11 snapshot rounds",
            lambda: published(data, "ONE") > 1000 and len(wal_records(data / "lob")) > 10,
            timeout=60,
            every=0.5,
        )
        out = finish(rec)
    finally:
        if rec.poll() is None:
            rec.kill()
    assert rec.returncode == 0, out
    n = len(wal_records(data / "ticks"))
    assert n > 1000
    assert published(data, "ONE") == n
    assert tail.returncode == 0, tail_err.decode()
    lines = tail_out.decode().splitlines()
    assert lines[0].startswith("# times in UTC")
    rows = lines[2:]
    assert len(rows) == 5 and all(" kite_tick " in row for row in rows), lines

    snapshots = wal_records(data / "lob")
    assert len(snapshots) > 10  # a round a second
    out = sink_until(tmp_path, archive, nats_server.url, n, env, snapshots=len(snapshots))
    assert f"sink: {n} records stored" in out
    assert f"{len(snapshots)} book snapshots stored" in out
    assert list(read_records(archive / "rec1" / "ticks")) == list(read_records(data / "ticks"))
    assert wal_records(archive / "rec1" / "lob") == snapshots
    store = str(archive / "rec1")
    outputs = []
    for args in (
        ["wal", "check", store],
        ["wal", "verify-books", store],
        ["replay", "--data-dir", store, "--format", "jsonl", "--out", "all.jsonl"],
    ):
        done = subprocess.run([sys.executable, "-m", "shriven", *args], cwd=tmp_path, env=env,
                              capture_output=True, timeout=60)  # fmt: skip
        outputs.append(done.stdout.decode())
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    # verify-books compared real books: every snapshot rebuilt from the one before or the start
    assert f": {len(snapshots)} snapshots of " in outputs[1], outputs[1]
    assert "; 0 differences" in outputs[1] and "nothing to compare" not in outputs[1]
    assert len((tmp_path / "all.jsonl").read_text().splitlines()) == n


def _health(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())
    except OSError:
        return {}


def test_nats_down_at_start_records_reports_lag_and_publishes_all_once_it_appears(
    tmp_path: Path,
) -> None:
    data = tmp_path / "market"
    server = NatsServer(tmp_path / "nats", "late")
    health = free_port()
    # small segments: the backlog spans several, so catch-up reads across rotation
    env = recorder_env(
        tmp_path, SHRIVEN_NATS_BUFFER_RECORDS="500", SHRIVEN_PIPELINE__WAL_SEGMENT_SIZE="65536"
    )
    rec = start_recorder(tmp_path, data, server.url, "--health-port", str(health), env=env)
    try:
        wait_until(
            "lag on /health",
            lambda: _health(health).get("publisher", {}).get("lag_records", 0) > 1500,
            timeout=40,
        )
        report = _health(health)
        assert report["publisher"]["connected"] is False
        assert report["publisher"]["acked"] == 0
        assert report["wal"]["records_written"] > 1500  # recording went on
        time.sleep(1.0)
        assert _health(health)["publisher"]["lag_seconds"] > 1.0
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{health}/metrics", timeout=2).read()
        assert b"shriven_publisher_lag_records" in metrics
        server.start()
        wait_until(
            "the publisher to catch up",
            lambda: (
                _health(health).get("publisher", {}).get("lag_records", 1) == 0
                and _health(health)["publisher"]["acked"] > 1500
            ),
            timeout=40,
        )
        out = finish(rec)
        assert rec.returncode == 0, out
        assert published(data) == len(wal_records(data / "ticks"))
        assert len(list((data / "ticks").glob("*.wal"))) > 2
        assert out.count("not publishing for now: cannot reach NATS") == 1, out
    finally:
        if rec.poll() is None:
            rec.kill()
        server.stop()


def _record_and_publish(tmp_path: Path, data: Path, url: str, env: dict[str, str]) -> None:
    """One run of the recorder that published some records, stopped with SIGTERM."""
    before = published(data, "WINDOW")
    rec = start_recorder(tmp_path, data, url, env=env)
    try:
        wait_until("acks", lambda: published(data, "WINDOW") > before + 300, timeout=90)
        out = finish(rec)
    finally:
        if rec.poll() is None:
            rec.kill()
    assert rec.returncode == 0, out


def test_a_recorder_republishing_after_the_duplicate_window_adds_nothing_twice_to_the_archive(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    data, archive = tmp_path / "market", tmp_path / "archive"
    # Its own subjects too: JetStream refuses a stream whose subjects overlap another's, and the
    # module's server already holds the SHRIVEN stream on shriven.> from the tests before.
    env = recorder_env(tmp_path, SHRIVEN_NATS_STREAM="WINDOW", SHRIVEN_NATS_SUBJECT_PREFIX="window",
                       SHRIVEN_NATS_DUPLICATE_WINDOW_SECS="1")  # fmt: skip
    _record_and_publish(tmp_path, data, nats_server.url, env)
    n1 = len(wal_records(data / "ticks"))
    assert published(data, "WINDOW") == n1
    # The position is lost and the recorder comes back long after the window: it sends its
    # whole WAL again, and JetStream no longer knows those message ids.
    (data / "bus" / "WINDOW.position.json").unlink()
    time.sleep(1.5)
    _record_and_publish(tmp_path, data, nats_server.url, env)
    wal = keyed(data / "ticks")
    out = sink_until(tmp_path, archive, nats_server.url, len(wal), env)
    assert f"sink: {len(wal)} records stored, {n1} duplicates dropped" in out
    assert keyed(archive / "rec1" / "ticks") == wal

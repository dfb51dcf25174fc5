"""shriven wal archive / restore against a real S3 API server (moto's standalone server, started
here on loopback): segments are recompressed, verified, uploaded and checked there before the
local copy goes; a failed upload keeps it and says so; restore brings back a readable store with
the same bytes."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from shriven.wal import list_segments, read_records

from .cli import shriven
from .store import day_store

KEYS = {"SHRIVEN_S3_ACCESS_KEY_ID": "testing-key", "SHRIVEN_S3_SECRET_ACCESS_KEY": "s3cr3t-v4lue"}


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "moto_server exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto_server did not listen in 60 s"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def bucket(s3_url: str, request: pytest.FixtureRequest) -> str:
    name = "arch-" + hashlib.sha1(request.node.name.encode()).hexdigest()[:12]
    _client(s3_url).create_bucket(Bucket=name)
    return name


@pytest.fixture
def cli(capsys, monkeypatch, s3_url):
    monkeypatch.setenv("SHRIVEN_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("SHRIVEN_S3_ENDPOINT_URL", s3_url)
    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)
    from shriven.cli.app import settings

    settings.cache_clear()
    yield lambda *args: shriven(capsys, *args)
    settings.cache_clear()


def _client(url: str):
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=KEYS["SHRIVEN_S3_ACCESS_KEY_ID"],
        aws_secret_access_key=KEYS["SHRIVEN_S3_SECRET_ACCESS_KEY"],
    )


def _digests(store: Path) -> dict[str, str]:
    return {
        f"{wal}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
        for wal in ("ticks", "lob")
        for p in sorted((store / wal).iterdir())
        if p.suffix in (".wal", ".idx")
    }


@pytest.mark.parametrize("extra", [(), ("--dictionary", "--level", "10")])
def test_archive_then_restore_gives_back_the_same_segments(tmp_path, cli, s3_url, bucket, extra):
    store = day_store(tmp_path / "s", 4, records_per_day=400)
    (store / "instruments.json").write_text('{"format": "x"}')
    before = _digests(store)
    records_before = [r.recv_ns for r in read_records(store / "ticks")]
    done = cli("wal", "archive", store, f"s3://{bucket}/nifty", *extra)
    assert done.returncode == 0, done.stderr
    assert "archived 6 segments to" in done.stdout
    # only the newest of each WAL stays
    assert [p.name for _n, p in list_segments(store / "ticks")] == ["segment_00000003.wal"]
    keys = [o["Key"] for o in _client(s3_url).list_objects_v2(Bucket=bucket)["Contents"]]
    assert "nifty/ticks/segment_00000000.wal.zst" in keys
    assert "nifty/ticks/segment_00000000.json" in keys and "nifty/metadata.json" in keys
    assert ("--dictionary" in extra) == any(k.startswith("nifty/dictionaries/") for k in keys)
    assert KEYS["SHRIVEN_S3_SECRET_ACCESS_KEY"] not in done.stdout + done.stderr

    back = tmp_path / "back"
    done = cli("wal", "restore", f"s3://{bucket}/nifty", back)
    assert done.returncode == 0, done.stderr
    assert "restored 6 segments" in done.stdout
    restored = _digests(back)
    assert {k: v for k, v in before.items() if k in restored} == restored
    assert len(restored) == len(before) - 4  # the two newest segments and their indexes
    assert (back / "instruments.json").read_text() == '{"format": "x"}'
    # the restored store reads: every record of the archived segments, in order
    got = [r.recv_ns for r in read_records(back / "ticks")]
    assert got == records_before[: len(got)] and len(got) == 3 * 400
    assert (back / "metadata.json").is_file()
    # restoring again skips what is there
    again = cli("wal", "restore", f"s3://{bucket}/nifty", back)
    assert again.returncode == 0 and "restored 0 segments" in again.stdout


def test_a_failed_upload_keeps_the_local_segments_and_says_so(tmp_path, cli):
    store = day_store(tmp_path / "s", 3)
    before = _digests(store)
    done = cli("wal", "archive", store, "s3://no-such-bucket/x")
    assert done.returncode == 1
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("shriven: error: upload of s3://no-such-bucket/x/")
    assert "/segment_00000000.wal.zst failed: NoSuchBucket" in line
    assert line.endswith("4 segments kept locally, nothing of them removed")
    assert _digests(store) == before


def test_dry_run_lists_and_touches_nothing(tmp_path, cli, bucket, s3_url):
    store = day_store(tmp_path / "s", 3)
    before = _digests(store)
    done = cli("wal", "archive", store, f"s3://{bucket}/p", "--keep-days", "0", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "would archive 4 segments" in done.stdout
    assert _digests(store) == before
    assert "Contents" not in _client(s3_url).list_objects_v2(Bucket=bucket)


def test_archive_to_a_directory_and_a_bad_location(tmp_path, cli):
    store = day_store(tmp_path / "s", 2)
    done = cli("wal", "archive", store, tmp_path / "cold")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cold" / "ticks" / "segment_00000000.wal.zst").is_file()
    done = cli("wal", "archive", store, "ftp://host/x")
    assert done.returncode == 2 and "bad archive location 'ftp://host/x'" in done.stderr

"""A store recorded by the real daemon from the built-in simulators (`shriven run --sim`), run
twice so it holds a restart: verify-books passes, and each book snapshot the daemon wrote equals
the book replay rebuilds at that instant from the snapshot before it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import shriven.pipeline  # noqa: F401  (a broken daemon import must fail here, not skip)
from shriven.events import BookSnapshot
from shriven.replay.books import verify_books
from shriven.replay.reconstruct import book_at
from shriven.replay.store import StoreReader


def _run_sim(tmp_path: Path, data: Path, seconds: float) -> None:
    env = dict(os.environ)
    env["SHRIVEN_CACHE_DIR"] = str(tmp_path / "cache")
    env["SHRIVEN_PIPELINE__SPOT_SYMBOLS"] = '["NIFTY 50"]'
    env["SHRIVEN_PIPELINE__OPTION_STRIKE_RANGE"] = "2"
    env["SHRIVEN_PIPELINE__SNAPSHOT_INTERVAL_SECS"] = "1"
    cmd = [sys.executable, "-m", "shriven", "run", "--sim", "--quiet", "--health-port", "-1"]
    cmd += ["--data-dir", str(data), "--sim-rate", "500", "--duration", str(seconds)]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("sim_run")
    data = tmp / "market"
    _run_sim(tmp, data, 3.5)
    _run_sim(tmp, data, 2.5)  # a daemon restart in the same store
    return data


def test_verify_books_passes_on_a_store_the_daemon_recorded(recorded: Path) -> None:
    store = StoreReader(recorded)
    report = verify_books(store.ticks.records(), store.snapshots(), store.restart_times())
    assert report.ok, report.differences[:3]
    assert report.restarts == 2
    assert report.pairs > 0
    assert any(k.startswith("binance:") for k in report.books)
    assert any(k.startswith("kite:") for k in report.books)


def test_books_at_the_daemons_snapshot_times_equal_its_snapshots(recorded: Path) -> None:
    store = StoreReader(recorded)
    snaps = [s for s in store.snapshots() if type(s) is BookSnapshot]
    compared = equal = 0
    for snap in snaps[::2]:
        key = f"{snap.venue}:{snap.instrument}"
        # Just before the snapshot's instant, so replay starts from the snapshot before it.
        got = book_at(StoreReader(recorded), key, snap.recv_ns - 1)
        if got.snapshot is None:
            continue
        compared += 1
        equal += got.book.levels() == (list(snap.bids), list(snap.asks))
    assert compared >= 5 and equal == compared


def test_replay_of_the_recording_is_deterministic(recorded: Path, tmp_path: Path) -> None:
    outs = []
    for i in range(2):
        out = tmp_path / f"{i}.jsonl"
        cmd = [sys.executable, "-m", "shriven", "replay", "--data-dir", str(recorded)]
        cmd += ["--kind", "ticks,trades,depth,status,snapshots", "--format", "jsonl"]
        done = subprocess.run(
            [*cmd, "--out", str(out)], env=dict(os.environ), capture_output=True, timeout=120
        )
        assert done.returncode == 0, done.stderr.decode()
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    rows = [json.loads(line) for line in outs[0].splitlines()]
    assert {r["type"] for r in rows} >= {"kite_tick", "binance_depth", "book_snapshot", "status"}


def test_kite_names_resolve_from_the_store_alone(recorded: Path, tmp_path: Path) -> None:
    # No instruments cache at all (as a month later, when the contracts have left Kite's dump):
    # the store's own instruments.json names what it recorded.
    env = dict(os.environ, SHRIVEN_CACHE_DIR=str(tmp_path / "empty-cache"))
    cmd = [sys.executable, "-m", "shriven", "replay", "--data-dir", str(recorded)]
    cmd += ["--symbol", "NIFTY 50", "--kind", "ticks", "--format", "jsonl"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "spot NIFTY 50 (token 256265) with 2 futures and" in done.stderr
    tokens = {json.loads(line)["instrument_token"] for line in done.stdout.splitlines()}
    assert 256265 in tokens and len(tokens) >= 2 + 2 * 5  # spot, futures, +-2 strikes CE/PE


def test_every_status_detail_is_one_json_object_for_every_venue(recorded: Path) -> None:
    from shriven.events import Status

    statuses = [r for r in StoreReader(recorded).ticks.records() if type(r) is Status]
    kinds = {(s.venue, s.kind) for s in statuses}
    assert {("kite", "connected"), ("binance", "connected"), ("binance", "resynced")} <= kinds
    assert {("system", "started"), ("system", "stopped"), ("binance", "disconnected")} <= kinds
    for s in statuses:
        assert isinstance(json.loads(s.detail), dict), (s.venue, s.kind, s.detail)
    binance = [json.loads(s.detail) for s in statuses if s.venue == "binance"]
    assert all(isinstance(d["shard"], int) for d in binance if "symbols" in d)
    assert any(isinstance(d.get("last_update_id"), int) for d in binance)

"""The recorder's live basis watch: fed the records as written, it counts a planted deviation in
its metrics and queues a status record when it opens and when it closes; `run --sim` recording
Binance spot and a USD-M perpetual of the same symbol runs it, and what it marked live is what
`replay arb` finds in the store afterwards."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry
from tests.analytics.test_basis import NS, SYMBOL, T0, USDM, sim_records

from shriven.app.basis_tap import BASIS_KIND, BasisTap, basis_pairs
from shriven.events import Status
from shriven.pipeline.queue import RecordQueue
from shriven.replay import replay_range
from shriven.replay.arb import replay_arb
from shriven.replay.times import format_ns

UTC = ZoneInfo("UTC")


def live_marks(data_dir: Path, kind: str) -> list[dict[str, object]]:
    """The details of the store's ``analytics`` status records of ``kind``, in order."""
    status = io.StringIO()
    replay_range(data_dir, status, UTC, kinds=["status"], fmt="jsonl")
    rows = map(json.loads, status.getvalue().splitlines())
    return [json.loads(row["detail"]) for row in rows if row.get("kind") == kind]


def test_a_planted_basis_is_counted_and_marked_when_it_opens_and_closes(tmp_path: Path) -> None:
    queue = RecordQueue(maxsize=1_000)
    registry = CollectorRegistry()
    tap = BasisTap({SYMBOL}, 5.0, tmp_path, queue, registry)
    records = sim_records(300, plant=(100, 200))
    for i in range(0, len(records), 50):  # batches, as the recorder loop hands them over
        tap(records[i : i + 50])
    labels = {"perpetual": f"{USDM}:{SYMBOL}"}
    assert registry.get_sample_value("shriven_basis_violations_opened_total", labels) == 1.0
    assert registry.get_sample_value("shriven_basis_violations_closed_total", labels) == 1.0
    assert registry.get_sample_value("shriven_basis_violations_open", labels) == 0.0
    marks = [r for r in queue.take(1_000) if type(r) is Status]
    assert [(m.venue, m.kind, m.seq) for m in marks] == [
        ("analytics", BASIS_KIND, 1),
        ("analytics", BASIS_KIND, 2),
    ]
    opened, closed = (json.loads(m.detail) for m in marks)
    assert (opened["state"], closed["state"]) == ("opened", "closed")
    assert (opened["spot"], opened["perpetual"]) == (f"binance:{SYMBOL}", f"{USDM}:{SYMBOL}")
    assert opened["tick_ns"] == T0 + 101 * NS // 10  # step 100
    assert closed["tick_ns"] == T0 + 201 * NS // 10
    assert 29.9 <= opened["edge_bps"] <= 30.05
    assert opened["funding_rate"] is not None and opened["next_funding_ms"] > 0


def test_a_perpetual_without_its_spot_gets_no_watch_and_one_line(tmp_path: Path) -> None:
    spots, lonely = basis_pairs(
        ["BTCUSDT"],
        [
            (USDM, "BTCUSDT"),
            (USDM, "ETHUSDT"),
            (USDM, "BTCUSDT_261225"),
            ("binance-coinm", "BTCUSD_PERP"),
        ],
        tmp_path,
    )
    assert spots == {"BTCUSDT"}  # the COIN-M perpetual pairs with the USDT spot too
    assert lonely == [
        f"no live basis watch for {USDM}:ETHUSDT: its spot ETHUSDT is not recorded "
        "(add it to SHRIVEN_BINANCE_SYMBOLS)"
    ]


def test_run_sim_with_spot_and_a_perpetual_marks_live_what_replay_finds(tmp_path: Path) -> None:
    data = tmp_path / "market"
    env = dict(os.environ)
    env["SHRIVEN_CACHE_DIR"] = str(tmp_path / "cache")
    env["SHRIVEN_CONFIG_FILE"] = os.devnull
    env["SHRIVEN_BINANCE_SYMBOLS"] = SYMBOL
    env["SHRIVEN_BINANCE_USDM_SYMBOLS"] = SYMBOL
    # the two simulated books start at one price and walk apart by a few ticks: at 0 bps
    # every walk wider than the spreads is a deviation
    env["SHRIVEN_ANALYTICS_BASIS_THRESHOLD_BPS"] = "0"
    cmd = [sys.executable, "-m", "shriven", "run", "--sim", "--quiet", "--health-port", "-1"]
    cmd += ["--venue", f"binance,{USDM}", "--data-dir", str(data), "--duration", "4"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert b"live basis watch" in done.stderr, done.stderr.decode()
    live = live_marks(data, BASIS_KIND)
    assert live, "no deviation marked live in 4 s"
    out = io.StringIO()
    replay_arb(data, out, UTC, fmt="jsonl", basis_threshold=0.0)
    replayed = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(d["state"], format_ns(d["tick_ns"], UTC)) for d in live] == [
        (r["event"], r["time"]) for r in replayed[: len(live)]
    ]

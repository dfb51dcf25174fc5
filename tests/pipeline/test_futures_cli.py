"""`shriven run` with the futures venues: the dry run lists each venue's connections, a venue
without symbols is one line, and `run --sim --venue binance-usdm` records a store whose books
verify."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def shriven(tmp_path: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHRIVEN_", "ZERODHA_"))}
    env.update(env_extra)
    cmd = [sys.executable, "-m", "shriven", *args]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_dry_run_lists_every_chosen_binance_venue(tmp_path: Path) -> None:
    done = shriven(
        tmp_path, "run", "--dry-run", "--venue", "binance,binance-usdm,binance-coinm",
        "--data-dir", str(tmp_path / "m"),
        SHRIVEN_BINANCE_SYMBOLS="BTCUSDT",
        SHRIVEN_BINANCE_USDM_SYMBOLS="BTCUSDT,ETHUSDT",
        SHRIVEN_BINANCE_USDM_DEPTH_INTERVAL="0ms",
        SHRIVEN_BINANCE_COINM_SYMBOLS="BTCUSD_PERP",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Binance: 1 symbol(s), 2 streams (depth@100ms, trade)" in out
    assert "Binance USD-M futures: 2 symbol(s), 10 streams (depth@0ms, aggTrade, bookTicker" in out
    assert "to wss://fstream.binance.com; depth snapshots of 1000 levels from https://fapi" in out
    assert "Binance COIN-M futures: 1 symbol(s)" in out and "wss://dstream.binance.com" in out
    assert out.rstrip().endswith("dry run: nothing was connected or recorded")


def test_a_named_futures_venue_without_symbols_is_one_line(tmp_path: Path) -> None:
    done = shriven(tmp_path, "run", "--dry-run", "--venue", "binance-coinm")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "shriven: error: no Binance COIN-M symbols: pass --symbols BTCUSD_PERP or set "
        "SHRIVEN_BINANCE_COINM_SYMBOLS"
    ]
    done = shriven(tmp_path, "run", "--dry-run", "--venue", "binance-usdm", "--symbols", "BTC-USDT")
    assert done.returncode == 2 and "bad futures symbol 'BTC-USDT'" in done.stderr
    assert done.stderr.count("\n") == 1


def test_run_sim_usdm_records_a_store_whose_books_verify(tmp_path: Path) -> None:
    data = tmp_path / "market"
    done = shriven(
        tmp_path, "run", "--sim", "--venue", "binance-usdm", "--duration", "4", "--quiet",
        "--health-port", "-1", "--data-dir", str(data),
        SHRIVEN_PIPELINE__SNAPSHOT_INTERVAL_SECS="1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (data / "binance_instruments.json").is_file()
    verified = shriven(tmp_path, "wal", "verify-books", str(data))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    book = shriven(
        tmp_path, "replay", "book", "--symbol", "binance-usdm:BTCUSDT", "--at", "2100-01-01",
        "--data-dir", str(data), "--tz", "UTC",
    )  # fmt: skip
    assert book.returncode == 0, book.stderr
    assert "binance-usdm:BTCUSDT" in book.stdout
    # named and scaled from the store's Binance instruments table
    assert "binance-usdm:BTCUSDT: PERPETUAL of BTCUSDT, tick size 0.01000000" in book.stderr

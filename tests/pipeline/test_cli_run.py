"""`shriven run` refuses bad options with one line saying what to do, before connecting anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("SHRIVEN_BINANCE_SYMBOLS", None)
    for name in ("API_KEY", "API_SECRET", "USER_ID", "PASSWORD", "TOTP_SECRET"):
        env.pop(f"ZERODHA_{name}", None)
    cmd = [sys.executable, "-m", "shriven", "run", "--health-port", "-1", "--quiet", *args]
    cmd += ["--data-dir", str(tmp_path / "market")]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--venue", "binance"), "no Binance symbols: pass --symbols"),
        (("--symbols", "BTCUSDT"), "--symbols needs --venue kite or --venue binance"),
        (("--venue", "binance", "--symbols", "BTC-USDT"), "bad Binance symbol 'BTC-USDT'"),
        (("--venue", "kite"), "missing ZERODHA_API_KEY"),
        (("--venue", "nasdaq"), "use kite, binance or all"),
    ],
)
def test_bad_options_stop_with_one_line_and_record_nothing(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    done = run(tmp_path, *args)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "market" / "ticks").exists()


def test_dry_run_for_binance_prints_its_connections_and_connects_nowhere(tmp_path: Path) -> None:
    many = ",".join(f"S{i:03d}USDT" for i in range(300))
    done = run(tmp_path, "--dry-run", "--venue", "binance", "--symbols", f"btcusdt,{many}")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Binance: 301 symbol(s), 602 streams (depth@100ms, trade) over 1 websocket" in out
    assert "connection 1: BTCUSDT, S000USDT" in out
    assert "streams by SUBSCRIBE message" in out  # 602 names do not fit in one URL
    assert "Kite" not in out
    assert out.rstrip().endswith("dry run: nothing was connected or recorded")
    assert not (tmp_path / "market").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--dry-run", "--sim"), "--dry-run plans against the real venues; drop --sim"),
        (("--dry-run", "--venue", "binance"), "no Binance symbols: pass --symbols"),
    ],
)
def test_dry_run_refuses_what_it_cannot_plan(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    done = run(tmp_path, *args)
    assert done.returncode == 2 and says in done.stderr, done.stderr

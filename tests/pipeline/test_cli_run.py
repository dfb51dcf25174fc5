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

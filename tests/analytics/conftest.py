"""A store the real daemon recorded from the built-in Kite simulator (`shriven run --sim`), whose
futures and options are priced from one known volatility surface (sim/surface.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def sim_chain_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("sim_chain")
    data = tmp / "market"
    env = dict(os.environ)
    env["SHRIVEN_CACHE_DIR"] = str(tmp / "cache")
    env["SHRIVEN_CONFIG_FILE"] = os.devnull
    env["SHRIVEN_PIPELINE__SPOT_SYMBOLS"] = '["NIFTY 50"]'
    env["SHRIVEN_PIPELINE__OPTION_STRIKE_RANGE"] = "6"
    cmd = [sys.executable, "-m", "shriven", "run", "--sim", "--quiet", "--health-port", "-1"]
    cmd += ["--venue", "kite", "--data-dir", str(data), "--sim-rate", "3000", "--duration", "3"]
    done = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    return data

"""`shriven serve` and `run --serve` from the command line: what they refuse, in one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def _shriven(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "SHRIVEN_CACHE_DIR": str(tmp_path / "cache"), **env}
    cmd = [sys.executable, "-m", "shriven", *args]
    return subprocess.run(cmd, cwd=tmp_path, env=full, capture_output=True, text=True, timeout=120)


def test_serve_refuses_a_directory_that_is_not_a_store(tmp_path: Path) -> None:
    done = _shriven(tmp_path, "serve", "--data-dir", str(tmp_path), "--port", "0")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"shriven: error: {tmp_path} is not a shriven store (no ticks/ or lob/ directory): "
        "give the data directory a recorder wrote (--data-dir)"
    ]


def test_serve_beyond_loopback_without_a_key_is_refused(synth_store: Path, tmp_path: Path) -> None:
    done = _shriven(tmp_path, "serve", "--data-dir", str(synth_store), "--host", "0.0.0.0")
    assert done.returncode == 2
    assert "SHRIVEN_SERVE__API_KEY" in done.stderr and "Traceback" not in done.stderr


def test_run_serve_on_a_taken_port_fails_before_recording(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _shriven(
            tmp_path, "run", "--sim", "--venue", "binance", "--quiet", "--health-port", "-1",
            "--data-dir", str(tmp_path / "market"), "--duration", "5", "--serve", str(port),
        )  # fmt: skip
    assert done.returncode == 2
    assert f"shriven: error: cannot serve on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_api_key_is_read_from_the_environment_and_never_printed(
    synth_store: Path, tmp_path: Path
) -> None:
    done = _shriven(
        tmp_path, "serve", "--data-dir", str(synth_store), "--port", "0", "--duration", "0.5",
        SHRIVEN_SERVE__API_KEY="k-7c1e", SHRIVEN_SERVE__MAX_CLIENTS="3",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "serving" in done.stderr and "k-7c1e" not in done.stderr + done.stdout
    typo = _shriven(tmp_path, "serve", "--data-dir", str(synth_store), SHRIVEN_SERVE__APIKEY="x")
    assert typo.returncode == 2 and "unknown setting SHRIVEN_SERVE__APIKEY" in typo.stderr

"""deploy/systemd/shriven.service: systemd accepts it without a warning, and it keeps the
promises docs/operations.md makes (restarts spaced out, time to drain, hardening)."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).parents[2] / "deploy" / "systemd" / "shriven.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_has_nothing_to_say(tmp_path):
    # verify checks that ExecStart's program exists: point it at one that does
    text = UNIT.read_text().replace("/opt/shriven/.venv/bin/shriven", shutil.which("true") or "")
    unit = tmp_path / "shriven.service"
    unit.write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # unknown keys are only warnings


def test_restarts_are_spaced_and_shutdown_has_time_to_drain():
    service = _unit()["Service"]
    assert service["Restart"] == "always"
    assert int(service["RestartSec"]) >= 5  # a refused login must not spin
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= 60
    assert _unit()["Unit"]["StartLimitIntervalSec"] == "0"


def test_hardening_runs_as_its_own_user_with_only_the_data_and_cache_writable():
    service = _unit()["Service"]
    assert service["User"] == "shriven" and service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    writable = service["ReadWritePaths"].split()
    data = service["Environment"]  # configparser keeps the last Environment= line
    assert "/var/lib/shriven" in writable and "/var/cache/shriven" in writable
    assert "/var/log/shriven" in writable
    assert "SHRIVEN_" in data
    assert "run --quiet" in service["ExecStart"] and "--log-file" in service["ExecStart"]

"""Every way a user can get a command wrong ends in one line (`shriven: error: ...`) and exit
status 2, never a traceback; `shriven --version` says which shriven it is."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from shriven.cli import app
from shriven.cli.app import settings
from shriven.errors import ConfigError

runner = CliRunner()
SHRIVEN = Path(sys.executable).parent / "shriven"
SIM = ("--sim", "--duration", "1", "--quiet")
BINANCE = ("run", "--venue", "binance", "--symbols", "BTCUSDT", "--health-port", "-1")
# Nothing here may reach a venue, even when a check under test is missing: a closed local port.
NOWHERE = {
    "SHRIVEN_KITE_API_ROOT": "http://127.0.0.1:9",
    "SHRIVEN_KITE_LOGIN_ROOT": "http://127.0.0.1:9",
    "SHRIVEN_KITE_WS_URL": "ws://127.0.0.1:9",
    "SHRIVEN_BINANCE_API_ROOT": "http://127.0.0.1:9",
    "SHRIVEN_BINANCE_WS_URL": "ws://127.0.0.1:9",
}


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHRIVEN_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("SHRIVEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SHRIVEN_BINANCE_SYMBOLS", raising=False)
    for name, value in NOWHERE.items():
        monkeypatch.setenv(name, value)
    settings.cache_clear()
    yield
    settings.cache_clear()
    structlog.reset_defaults()


def _process(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZERODHA_", "SHRIVEN_"))}
    env.update(NOWHERE, SHRIVEN_CONFIG_FILE=os.devnull)
    return subprocess.run(
        [str(SHRIVEN), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


def test_version_prints_the_installed_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"shriven {version('shriven')}\n"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["run", "--strike-range", "300"], "Invalid value for '--strike-range'"),
        (["run", "--no-such-option"], "No such option: --no-such-option"),
        (["run", "--duration", "soon"], "Invalid value for '--duration'"),
        (["wal", "check"], "Missing argument 'PATH'"),
        (["nonsense"], "No such command 'nonsense'"),
        (["run", *SIM, "--health-port", "70000"], "70000 is not a port"),
        (["run", *SIM, "--health-port", "-2"], "-2 is not a port"),
        (["run", *SIM, "--sim-rate", "-1"], "--sim-rate: must be more than 0"),
        (["run", *SIM, "--sim-rate", "0"], "--sim-rate: must be more than 0"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(tmp_path: Path, args: list[str], says: str) -> None:
    if "--sim" in args:  # bounded even where the option is not refused
        args = [*args, "--data-dir", str(tmp_path / "sim")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("shriven: error: "), result.stderr
    assert says in lines[0] and "--help`" in lines[0]


def test_a_data_dir_inside_a_file_is_refused_before_anything_starts(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a directory")
    for data_dir in (tmp_path / "afile", tmp_path / "afile" / "market"):
        result = runner.invoke(
            app,
            [*BINANCE, "--data-dir", str(data_dir)],
        )
        assert isinstance(result.exception, ConfigError), result.output
        assert f"cannot record into {data_dir}" in str(result.exception)
        assert "which is a file" in str(result.exception) or "it is a file" in str(result.exception)


def test_a_wal_directory_that_is_a_file_is_refused_like_the_data_dir(tmp_path: Path) -> None:
    market = tmp_path / "market"
    market.mkdir()
    (market / "ticks").write_text("not a directory")
    # in-process: test_a_real_process_prints_one_line_and_no_traceback covers the printed line
    for args in ([*BINANCE, "--data-dir", str(market)], ["run", *SIM, "--data-dir", str(market)]):
        result = runner.invoke(app, args)
        assert isinstance(result.exception, ConfigError), result.output
        line = str(result.exception)
        assert line.startswith(f"cannot record into {market}: ") and "\n" not in line, line
        assert f"{market / 'ticks'} is a file" in line and "Errno" not in line, line
    assert (market / "ticks").read_text() == "not a directory"


def test_dry_run_refuses_the_data_dir_run_refuses(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    args = ["run", "--dry-run", "--venue", "binance", "--symbols", "BTCUSDT"]
    result = runner.invoke(app, [*args, "--data-dir", str(tmp_path / "afile" / "m")])
    assert isinstance(result.exception, ConfigError)
    ok = runner.invoke(app, [*args, "--data-dir", str(tmp_path / "m")])
    assert ok.exit_code == 0, ok.output
    assert not (tmp_path / "m").exists()  # a dry run creates nothing


def test_dry_run_refuses_symbols_without_a_venue_like_run() -> None:
    result = runner.invoke(app, ["run", "--dry-run", "--symbols", "BTCUSDT"])
    assert isinstance(result.exception, ConfigError)
    assert "--symbols needs --venue kite or --venue binance" in str(result.exception)


def test_a_real_process_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    for args in (
        ["run", *SIM, "--health-port", "70000", "--data-dir", str(tmp_path / "sim")],
        ["run", "--strike-range", "300"],
        [*BINANCE, "--data-dir", str(tmp_path / "afile" / "market")],
    ):
        done = _process(tmp_path, *args)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("shriven: error: "), done.stderr
    assert _process(tmp_path, "--version").stdout.startswith("shriven ")

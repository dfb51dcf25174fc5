"""Logging: a bad --log-level is refused, and secrets never reach the log at any level, whether
shriven logs them or a library (websockets, urllib3) does."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import structlog

from shriven.errors import ConfigError
from shriven.logging import configure_logging, get_logger
from shriven.sim.kite_rest import SimAccount


@pytest.fixture(autouse=True)
def _reset_logging():
    yield
    structlog.reset_defaults()
    logging.basicConfig(force=True, level=logging.WARNING)


def test_a_bad_log_level_is_refused():
    with pytest.raises(ConfigError, match=r"bad --log-level 'loud': use debug, info"):
        configure_logging("loud")


def test_the_cli_refuses_a_bad_log_level_in_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "shriven", "--log-level", "verbose", "wal", "stats", str(tmp_path)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=60,
    )
    assert done.returncode == 2
    said = "shriven: error: bad --log-level 'verbose': use debug, info, warning, error\n"
    assert done.stderr == said


def test_library_debug_lines_and_our_fields_are_scrubbed(capsys):
    configure_logging("debug")
    url = "wss://ws.kite.trade?api_key=KEY123&access_token=TOKEN456"
    logging.getLogger("websockets.client").info("> GET /?api_key=KEY123&access_token=TOKEN456")
    logging.getLogger("urllib3").debug("%s", {"Authorization": "token KEY123:TOKEN456"})
    logging.getLogger("kiteconnect").debug('Response: {"access_token":"TOKEN456"}')
    get_logger("t").info("connecting", url=url, reason="access_token=TOKEN456 refused")
    err = capsys.readouterr().err
    assert "TOKEN456" not in err and "KEY123" not in err
    assert err.count("access_token") == 4 and "connecting" in err  # the lines are still there


def test_websocket_frames_stay_out_of_debug_logs(capsys):
    configure_logging("debug")
    logging.getLogger("websockets.client").debug("< BINARY 00 01 02 [3 bytes]")
    get_logger("t").debug("our debug event")
    err = capsys.readouterr().err
    assert "BINARY" not in err and "our debug event" in err


def test_a_debug_run_logs_no_credential_or_token(tmp_path: Path):
    """The whole daemon at --log-level debug against the simulators: login, instruments, LTP,
    the ticker websocket (whose URL carries the access token) and Binance."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZERODHA_", "SHRIVEN_"))}
    env.update(
        SHRIVEN_CACHE_DIR=str(tmp_path / "cache"),
        SHRIVEN_CONFIG_FILE=os.devnull,
        SHRIVEN_PIPELINE__SPOT_SYMBOLS="NIFTY 50",
        SHRIVEN_PIPELINE__OPTION_STRIKE_RANGE="1",
    )
    cmd = [sys.executable, "-m", "shriven", "--log-level", "debug", "run", "--sim", "--quiet"]
    cmd += ["--health-port", "-1", "--duration", "2", "--sim-rate", "200"]
    cmd += ["--data-dir", str(tmp_path / "market")]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    (token_file,) = (tmp_path / "cache").rglob("zerodha_token_*.json")
    token = json.loads(token_file.read_text())["access_token"]
    a = SimAccount()
    log = done.stdout + done.stderr
    # debug lines of the libraries that carry credentials were written, and the ticker connected
    assert "POST /session/token" in log and "GET /quote/ltp" in log and "kite login ok" in log
    assert "venue=binance" in log  # connection events say which feed they are about
    for secret in (token, a.password, a.totp_secret, a.api_secret, a.api_key):
        assert secret not in log


def test_scrubbing_leaves_ordinary_messages_alone():
    from shriven.logging import scrub

    for text in (
        "Kite rejected the session checksum: ZERODHA_API_SECRET does not belong to ZERODHA_API_KEY",
        "check ZERODHA_USER_ID and ZERODHA_PASSWORD (log in once at kite.zerodha.com)",
        "sequence: expected U=101, got U=105",
        "corrupt WAL frame at byte 32: checksum mismatch",
    ):
        assert scrub(text) == text


def test_log_json_renders_library_records_as_json_too(capsys):
    configure_logging("debug", json=True)
    logging.getLogger("urllib3.connectionpool").debug('"GET /instruments HTTP/1.1" 200 %d', 5)
    get_logger("t").info("instruments fetched", rows=5)
    lines = capsys.readouterr().err.splitlines()
    docs = [json.loads(line) for line in lines]  # every line is one JSON object
    assert docs[0]["event"] == '"GET /instruments HTTP/1.1" 200 5'
    assert docs[0]["logger"] == "urllib3.connectionpool" and docs[0]["level"] == "debug"
    assert docs[1]["event"] == "instruments fetched" and docs[1]["rows"] == 5


@pytest.mark.parametrize("json_logs", [False, True], ids=["console", "json"])
def test_traceback_text_is_scrubbed_like_log_fields(capsys, json_logs: bool):
    """requests puts the URL, query string and all, in its error messages."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: connection refused
    configure_logging("info", json=json_logs)
    try:
        requests.get(
            f"http://127.0.0.1:{port}/quote?api_key=KEY123&access_token=TOKEN456", timeout=5
        )
    except requests.ConnectionError:
        get_logger("t").exception("ltp failed")
    err = capsys.readouterr().err
    assert "ConnectionError" in err and "access_token=***" in err
    assert "TOKEN456" not in err and "KEY123" not in err

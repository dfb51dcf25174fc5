"""--log-file: the log goes to a file as well, rotated by size or day, with N old files kept, and
secrets are scrubbed there as on the console."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
import structlog

from shriven.errors import ConfigError
from shriven.logging import configure_logging, get_logger, parse_rotation


@pytest.fixture(autouse=True)
def _reset_logging():
    yield
    structlog.reset_defaults()
    logging.basicConfig(force=True, level=logging.WARNING)


def test_size_rotation_keeps_the_configured_number_of_old_files(tmp_path):
    path = tmp_path / "logs" / "shriven.log"
    configure_logging("info", json=True, log_file=path, rotate="2kB", keep=3)
    log = get_logger("t")
    for i in range(200):
        log.info("filler", i=i, pad="x" * 40)
    logging.shutdown()
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["shriven.log", "shriven.log.1", "shriven.log.2", "shriven.log.3"]
    assert all(p.stat().st_size <= 2100 for p in path.parent.iterdir())
    last = [json.loads(line) for line in path.read_text().splitlines()]
    assert last[-1]["event"] == "filler" and last[-1]["i"] == 199


def test_the_log_file_gets_our_events_and_library_lines_scrubbed(tmp_path, capsys):
    path = tmp_path / "shriven.log"
    configure_logging("info", log_file=path)
    get_logger("t").info("connecting", url="wss://x?api_key=K1&access_token=SECRET9")
    logging.getLogger("urllib3").warning("%s", {"Authorization": "token K1:SECRET9"})
    text = path.read_text()
    assert "connecting" in text and "access_token=***" in text
    assert "SECRET9" not in text and "\x1b[" not in text  # no colour codes in a file
    assert "connecting" in capsys.readouterr().err  # the console still has it


def test_rotation_texts():
    assert parse_rotation("daily") is None
    assert parse_rotation("100MB") == 100_000_000
    assert parse_rotation("1MiB") == 1 << 20
    with pytest.raises(ConfigError, match="bad --log-rotate 'weekly'"):
        parse_rotation("weekly")


def test_an_unwritable_log_file_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "shriven", "--log-file", str(blocker / "x.log"), "wal", "stats",
         str(tmp_path)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("shriven: error: cannot write the log file")
    assert done.stderr.count("\n") == 1

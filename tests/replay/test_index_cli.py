"""`shriven replay index` as users run it, and the cold start of `shriven replay book`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shriven.cli import app
from shriven.replay.columns import sidecar_path
from shriven.wal import list_segments

from .synth import generate, record_store

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("isolated_cli_settings")


def _book(data_dir: Path, at: str) -> str:
    args = ["replay", "book", "--data-dir", str(data_dir), "--symbol", "BTCUSDT", "--at", at]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_index_writes_sidecars_and_replay_book_prints_the_same(tmp_path: Path) -> None:
    record_store(tmp_path, generate(seed=31, seconds=150, gap_at_s=50), segment_size=32 * 1024)
    segments = [p for _n, p in list_segments(tmp_path / "ticks")]
    instants = ["2026-11-20T03:46:10Z", "2026-11-20T03:47:25.5Z"]
    before = [_book(tmp_path, at) for at in instants]

    result = runner.invoke(app, ["replay", "index", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"wrote {len(segments) - 1} book index file(s); 0 already valid" in result.stdout
    assert [sidecar_path(p).exists() for p in segments] == [True] * (len(segments) - 1) + [False]
    assert [_book(tmp_path, at) for at in instants] == before

    again = runner.invoke(app, ["replay", "index", "--data-dir", str(tmp_path)])
    assert f"wrote 0 book index file(s); {len(segments) - 1} already valid" in again.stdout


def test_index_of_a_directory_that_is_not_a_store_is_a_one_line_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["replay", "index", "--data-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "not a shriven store" in str(result.exception) + result.output


def test_importing_the_cli_does_not_import_the_kite_client() -> None:
    # kiteconnect pulls in twisted: most of a cold `shriven replay book` before it was deferred
    code = "import sys, shriven.cli; print('kiteconnect' in sys.modules, 'twisted' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]

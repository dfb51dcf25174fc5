"""A store an older recorder wrote may hold records today's schema refuses (a depth diff with the
price "abc", a trade priced "NaN"): replay and verify-books count and skip them with a note and
never raise, and the books are rebuilt from the good records alone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from shriven.cli import app
from shriven.events import BinanceDepth, BinanceDepthSnapshot, BinanceTrade, Record, Status

from .synth import record_store

NS = 1_000_000_000
T0 = 1_795_000_000 * NS
runner = CliRunner()


def _old_store(data_dir: Path) -> list[Record]:
    records: list[Record] = [
        Status(T0, 1, "system", "started", "", "pid 1"),
        BinanceDepthSnapshot(T0 + 1, 1, "BTCUSDT", 10, (("100.0", "1"),), (("101.0", "1"),)),
        # in sequence, but a price the old parser let through (BookKeeper.apply raised on it)
        BinanceDepth(T0 + 2 * NS, 2, "BTCUSDT", 11, 11, 0, (("abc", "1"),), ()),
        BinanceDepth(T0 + 3 * NS, 3, "BTCUSDT", 11, 12, 0, (("99.5", "2"),), ()),
        BinanceTrade(T0 + 4 * NS, 4, "BTCUSDT", 7, "NaN", "1", 1, 1, True),
        BinanceTrade(T0 + 5 * NS, 5, "BTCUSDT", 8, "100.5", "1", 1, 1, True),
        BinanceDepth(T0 + 70 * NS, 6, "BTCUSDT", 13, 13, 0, (("-1", "1"),), ()),
        BinanceDepth(T0 + 71 * NS, 7, "BTCUSDT", 13, 13, 0, (("98.0", "3"),), ()),
        BinanceTrade(T0 + 130 * NS, 8, "BTCUSDT", 9, "100.5", "1", 1, 1, True),
    ]
    record_store(data_dir, records)
    return records


def test_replay_skips_records_the_schema_refuses_with_a_note(tmp_path: Path) -> None:
    data = tmp_path / "market"
    _old_store(data)
    result = runner.invoke(app, ["replay", "--data-dir", str(data), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    assert "skipped 3 stored records with values the schema refuses" in result.stderr
    assert '"abc"' not in result.stdout and "NaN" not in result.stdout
    assert '"99.5"' in result.stdout and '"98.0"' in result.stdout


def test_verify_books_skips_them_and_the_books_are_built_from_the_good_records(
    tmp_path: Path,
) -> None:
    data = tmp_path / "market"
    _old_store(data)
    result = runner.invoke(app, ["wal", "verify-books", str(data)])
    assert result.exit_code == 0, result.output
    assert "note: skipped 2 stored records" in result.stdout
    assert "0 differences" in result.stdout
    at = datetime.fromtimestamp((T0 + 72 * NS) / NS, UTC).isoformat()
    args = ["--data-dir", str(data), "--symbol", "BTCUSDT", "--at", at, "--depth", "5"]
    book = runner.invoke(app, ["replay", "book", *args])
    assert book.exit_code == 0, book.output
    assert "in sync" in book.stdout
    rows = [line.split("|")[0].split() for line in book.stdout.splitlines() if "|" in line][1:]
    assert [float(r[-1]) for r in rows if r] == [100.0, 99.5, 98.0], book.stdout

"""`--skip-damaged` on every command that reads a store (replay and its exports, replay book,
wal verify-books): the strict error names the flag; with it the rest is read and one stderr
line says how many frames and bytes were skipped and where."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shriven.cli import app
from shriven.errors import WalCorruptionError
from shriven.events import Record
from shriven.wal import list_segments
from shriven.wal.format import FRAME_HEADER, FRAME_HEADER_SIZE, SEGMENT_HEADER_SIZE

from .synth import generate, record_store

runner = CliRunner()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Record]]:
    data_dir = tmp_path_factory.mktemp("skip_store")
    records = generate(seed=5, seconds=120, rate_hz=20, gap_at_s=None)
    record_store(data_dir, records)
    return data_dir, records


pytestmark = pytest.mark.usefixtures("isolated_cli_settings")


def damaged_copy(pristine: Path, tmp_path: Path) -> tuple[Path, str, int, int, int]:
    """A copy of the store with one byte of a middle frame of the first tick segment flipped:
    (store, segment name, frame offset, frame length, records in the frame)."""
    store = tmp_path / "store"
    shutil.copytree(pristine, store)
    segment = list_segments(store / "ticks")[0][1]
    data = bytearray(segment.read_bytes())
    frames, pos = [], SEGMENT_HEADER_SIZE
    while pos < len(data):
        _magic, plen, count, *_ = FRAME_HEADER.unpack_from(data, pos)
        frames.append((pos, FRAME_HEADER_SIZE + plen, count))
        pos += FRAME_HEADER_SIZE + plen
    offset, length, count = frames[len(frames) // 2]
    data[offset + FRAME_HEADER_SIZE + 3] ^= 0x10
    segment.write_bytes(bytes(data))
    return store, segment.name, offset, length, count


def skipped_line(stderr: str) -> str:
    (line,) = [x for x in stderr.splitlines() if "skipped" in x]
    return line


def test_replay_and_exports_stop_at_damage_naming_the_flag(pristine, tmp_path) -> None:
    store, name, offset, _length, _count = damaged_copy(pristine[0], tmp_path)
    for fmt in ("jsonl", "csv"):
        result = runner.invoke(app, ["replay", "--data-dir", str(store), "--format", fmt])
        assert isinstance(result.exception, WalCorruptionError)
        message = str(result.exception)
        assert f"{name} at byte {offset}" in message and "--skip-damaged" in message


def test_replay_skip_damaged_reads_the_rest_and_says_what_it_skipped(pristine, tmp_path) -> None:
    data_dir, _records = pristine
    store, name, offset, length, count = damaged_copy(data_dir, tmp_path)
    result = runner.invoke(
        app, ["replay", "--data-dir", str(store), "--format", "jsonl", "--skip-damaged"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    whole = runner.invoke(app, ["replay", "--data-dir", str(data_dir), "--format", "jsonl"])
    assert len(rows) == len(whole.stdout.splitlines()) - count
    assert skipped_line(result.stderr) == (
        f"replay: skipped 1 damaged frame ({length:,} bytes): "
        f"ticks/{name} at byte {offset} (checksum mismatch)"
    )
    out = tmp_path / "all.csv"
    args = ["replay", "--data-dir", str(store), "--format", "csv", "--out", str(out)]
    export = runner.invoke(app, [*args, "--skip-damaged", "--no-progress"])
    assert export.exit_code == 0, export.output
    assert len(out.read_text().splitlines()) == len(rows) + 1  # the header
    assert "skipped 1 damaged frame" in export.stderr


def test_replay_book_skip_damaged(pristine, tmp_path) -> None:
    store, name, offset, _length, _count = damaged_copy(pristine[0], tmp_path)
    args = ["replay", "book", "--data-dir", str(store), "--symbol", "BTCUSDT"]
    args += ["--at", "2026-11-20T03:46:50Z"]
    strict = runner.invoke(app, args)
    assert isinstance(strict.exception, WalCorruptionError)
    assert "--skip-damaged" in str(strict.exception)
    tolerant = runner.invoke(app, [*args, "--skip-damaged"])
    assert tolerant.exit_code == 0, tolerant.output
    assert tolerant.stdout.startswith("binance:BTCUSDT at ")
    assert f"ticks/{name} at byte {offset}" in skipped_line(tolerant.stderr)


def test_verify_books_skip_damaged(pristine, tmp_path) -> None:
    store, name, offset, length, _count = damaged_copy(pristine[0], tmp_path)
    strict = runner.invoke(app, ["wal", "verify-books", str(store)])
    assert isinstance(strict.exception, WalCorruptionError)
    assert "--skip-damaged" in str(strict.exception)
    tolerant = runner.invoke(app, ["wal", "verify-books", str(store), "--skip-damaged"])
    assert tolerant.exit_code in (0, 1), tolerant.output  # records lost may change a book
    assert "snapshots of" in tolerant.stdout
    # each place once, though both the record scan and the restart scan met it
    assert skipped_line(tolerant.stderr) == (
        f"verify-books: skipped 1 damaged frame ({length:,} bytes): "
        f"ticks/{name} at byte {offset} (checksum mismatch)"
    )


def test_the_summary_names_three_places_and_counts_the_rest(tmp_path) -> None:
    from shriven.wal import ReadStats, skipped_summary

    a, b = ReadStats(), ReadStats()
    for off in (100, 200, 300, 400):
        a.skip(tmp_path / "ticks" / "segment_00000001.wal", off, 50, "checksum mismatch")
    b.skip(tmp_path / "ticks" / "segment_00000001.wal", 100, 50, "checksum mismatch")
    line = skipped_summary(a, b)
    assert line.startswith("skipped 4 damaged frames (200 bytes): ")
    assert "ticks/segment_00000001.wal at byte 300" in line and "byte 400" not in line
    assert line.endswith("and 1 more (`shriven wal check` lists them)")
    assert skipped_summary(ReadStats()) == ""

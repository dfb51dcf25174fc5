"""The public replay functions, called from Python as the CLI and the server call them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from shriven.errors import ReplayError
from shriven.events import Record
from shriven.replay import load_zone, replay_book, replay_range, verify_store

from .synth import NS, T0, Session, generate, record_store

ZONE = load_zone("Asia/Kolkata")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Record], Session]:
    data_dir = tmp_path_factory.mktemp("api_store")
    records = generate(seed=5, seconds=120, rate_hz=20, gap_at_s=60)
    return data_dir, records, record_store(data_dir, records)


def test_replay_range_to_a_text_stream_writes_the_range_and_returns_its_count(
    store: tuple[Path, list[Record], Session],
) -> None:
    data_dir, records, _ = store
    text = io.StringIO()
    heard: list[str] = []
    result = replay_range(
        data_dir,
        text,
        ZONE,
        start_ns=T0 + 30 * NS,
        end_ns=T0 + 90 * NS,
        fmt="jsonl",
        on_note=heard.append,
    )
    expected = [r for r in records if T0 + 30 * NS <= r.recv_ns < T0 + 90 * NS]
    rows = [json.loads(line) for line in text.getvalue().splitlines()]
    assert result.records == len(rows) == len(expected) > 100
    assert heard == result.notes
    assert any("times in Asia/Kolkata (UTC+05:30)" in n for n in result.notes)


def test_replay_range_to_a_path_and_to_a_binary_stream_give_the_same_bytes(
    store: tuple[Path, list[Record], Session], tmp_path: Path
) -> None:
    data_dir, _, _ = store
    out = tmp_path / "range.csv"
    buf = io.BytesIO()
    to_file = replay_range(data_dir, out, ZONE, fmt="csv")
    to_buf = replay_range(data_dir, buf, ZONE, fmt="csv")
    assert to_file.records == to_buf.records > 0
    assert out.read_bytes() == buf.getvalue()
    with pytest.raises(ReplayError, match="exists"):
        replay_range(data_dir, out, ZONE, fmt="csv")


def test_replay_range_refuses_parquet_to_a_text_stream(
    store: tuple[Path, list[Record], Session],
) -> None:
    with pytest.raises(ReplayError, match="parquet writes a file"):
        replay_range(store[0], io.StringIO(), ZONE, fmt="parquet")


def test_replay_book_and_verify_store_serve_python_callers(
    store: tuple[Path, list[Record], Session],
) -> None:
    data_dir, _, _ = store
    book = replay_book(data_dir, "BTCUSDT", T0 + 100 * NS, ZONE)
    assert book.key == "binance:BTCUSDT"
    assert book.book.snapshot is not None and book.book.book is not None
    verified = verify_store(data_dir)
    assert verified.report.ok and verified.report.snapshots > 0

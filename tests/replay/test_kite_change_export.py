"""The Kite index packets' wire `change` word reaches the WAL and every export format."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from shriven.events import KiteTick, SeqCounter
from shriven.feeds.kite.protocol import encode_message, encode_packet, parse_message
from shriven.replay import export
from shriven.wal import WalWriter, read_records

UTC = ZoneInfo("UTC")


def test_index_change_goes_from_the_wire_through_the_wal_to_jsonl_csv_and_parquet(
    tmp_path: Path,
) -> None:
    sent = KiteTick(0, 0, 256265, "full", 2_612_400, open=2_600_000, high=2_620_000,
                    low=2_598_000, close=2_605_000, exchange_timestamp=1_767_225_600,
                    change=-73_125)  # fmt: skip
    message = encode_message([encode_packet(sent, index=True)])
    (tick,) = parse_message(message, 5, SeqCounter())
    assert tick.change == -73_125
    with WalWriter(tmp_path, fsync_policy="never") as w:
        w.append([tick])
    (back,) = list(read_records(tmp_path))
    assert back.change == -73_125

    out = io.StringIO()
    export.write_jsonl([back], out, UTC)
    assert json.loads(out.getvalue())["change"] == -73_125
    out = io.StringIO()
    export.write_csv([back], out, UTC)
    (row,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert row["change"] == "-73125"
    pq = pytest.importorskip("pyarrow.parquet")
    with open(tmp_path / "t.parquet", "wb") as f:
        export.write_parquet([back], f, UTC)
    assert pq.read_table(tmp_path / "t.parquet").column("change").to_pylist() == [-73_125]

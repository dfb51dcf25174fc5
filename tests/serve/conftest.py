"""Stores for the serve tests, written through the real StoreWriter as the daemon writes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from replay.synth import generate, record_store
from shriven.events import Record


@pytest.fixture(scope="module")
def synth_records() -> list[Record]:
    return generate(seed=11, seconds=120, rate_hz=60.0, gap_at_s=70.0)


@pytest.fixture(scope="module")
def synth_store(tmp_path_factory: pytest.TempPathFactory, synth_records: list[Record]) -> Path:
    data = tmp_path_factory.mktemp("serve_store") / "market"
    record_store(data, synth_records, interval_s=10)
    return data

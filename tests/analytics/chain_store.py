"""Stores of a known option chain (sim/chain_records.py), written through the real StoreWriter
with the instruments.json the daemon keeps beside them."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from shriven.events import Status
from shriven.sim.chain_records import Plant, chain_instruments, chain_ticks
from shriven.universe.recorded import record_instruments
from shriven.wal import StoreWriter

NS = 1_000_000_000
TODAY = date(2026, 11, 25)
T0 = 1_795_585_500 * NS  # 2026-11-25T11:15:00+05:30


def write_chain_store(
    data_dir: Path,
    *,
    seconds: int = 60,
    step_s: float = 1.0,
    strikes: int = 5,
    underlyings: tuple[str, ...] = ("NIFTY",),
    spot_vol: float = 0.0,
    plant: Plant | None = None,
    batch: int = 2_000,
) -> list:  # type: ignore[type-arg]
    rows = chain_instruments(TODAY, underlyings, strikes=strikes)
    data_dir.mkdir(parents=True, exist_ok=True)
    record_instruments(data_dir, rows)
    store = StoreWriter(data_dir)
    pending: list = [Status(T0 - NS, 1, "system", "started", "", "{}")]  # type: ignore[type-arg]
    ticks = chain_ticks(
        rows, T0, T0 + seconds * NS, int(step_s * NS), spot_vol=spot_vol, plant=plant
    )
    for tick in ticks:
        pending.append(tick)
        if len(pending) >= batch:
            store.append_ticks(pending)
            pending = []
    if pending:
        store.append_ticks(pending)
    store.close()
    return rows

"""Packing a batch for the WAL holds little more than the packed bytes at any moment.

The recorder packs up to 5,000 records per frame. Built as one list of every record's wire form
(three lists per Kite tick), a batch held ~3.5 MB of small objects at its peak beside 0.9 MB of
output, and such peaks grew the interpreter's small-object arenas in steps that never went back
(benchmarks/soak_rss.py). No timing here: tracemalloc's peak during one call is the measure."""

from __future__ import annotations

import tracemalloc

from shriven.events import KiteTick, decode_batch, encode_batch
from shriven.sim.samples import sample_records


def test_packing_a_batch_peaks_at_about_its_output_size() -> None:
    batch = [r for r in sample_records(8_000, seed=3) if type(r) is KiteTick][:2_000]
    assert len(batch) == 2_000
    encode_batch(batch)  # the thread's packer keeps its buffer from here on
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        payload = encode_batch(batch)
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * len(payload), (peak, len(payload))
    assert decode_batch(payload) == batch

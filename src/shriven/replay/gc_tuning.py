"""Garbage-collector settings for long scans.

Decoding a WAL makes a few containers per record, and CPython's default generation-0 threshold
(700 allocations) then runs a collection every couple of hundred records, which costs more than
the decoding (measured: msgpack unpacking 2-3x slower). Records hold no reference cycles, so a
scan can collect rarely without growing."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["scan_gc"]


@contextlib.contextmanager
def scan_gc(threshold0: int = 200_000) -> Iterator[None]:
    """Collect every ``threshold0`` allocations instead of 700 while the block runs."""
    before = gc.get_threshold()
    gc.set_threshold(threshold0, before[1], before[2])
    try:
        yield
    finally:
        gc.set_threshold(*before)

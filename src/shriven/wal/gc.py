"""The cyclic garbage collector around record (un)packing: one copy of both settings.

Decoding or encoding a batch makes thousands of small containers at once, and CPython's default
generation-0 threshold (700 allocations) then runs a collection every couple of hundred records,
which costs more than the decoding (measured: msgpack unpacking 2-3x slower; msgpack's own
advice). Records hold no reference cycles, so pausing or rarely collecting never grows memory."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from types import TracebackType

__all__ = ["paused_gc", "scan_gc"]


class paused_gc:
    """``with paused_gc():`` the collector is off while one batch is packed or unpacked, and
    back on afterwards if it was on. A class, not a generator: it runs once per frame."""

    __slots__ = ("_was_on",)

    def __enter__(self) -> None:
        self._was_on = gc.isenabled()
        gc.disable()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._was_on:
            gc.enable()


@contextlib.contextmanager
def scan_gc(threshold0: int = 200_000) -> Iterator[None]:
    """Collect every ``threshold0`` allocations instead of 700 while a long scan (a replay, a
    verification) runs."""
    before = gc.get_threshold()
    gc.set_threshold(threshold0, before[1], before[2])
    try:
        yield
    finally:
        gc.set_threshold(*before)

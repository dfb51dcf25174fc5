"""Keeping a long recording's resident memory flat and its pauses short: the C allocator's settings
and the garbage collector's view of the start-up objects, for the daemon."""

from __future__ import annotations

import ctypes
import gc
import os

from shriven.logging import get_logger

log = get_logger("shriven.pipeline.memory")

_M_MMAP_THRESHOLD = -3  # glibc <malloc.h>
MMAP_THRESHOLD = 128 * 1024


def fix_mmap_threshold() -> bool:
    """Pin glibc's mmap threshold at 128 KiB; False where that is not possible (not glibc) or
    the user chose one (``MALLOC_MMAP_THRESHOLD_``).

    The recorder's large buffers (a frame's msgpack payload and its zstd output, a websocket
    message: 100 KiB to a few MiB, of varying size) come from mmap and go back to the system when
    freed. glibc's default raises the threshold each time such a buffer is freed, after which the
    same buffers come from the heap, which they fragment: `run --sim --sim-rate 10000` then grew
    by 2.4 to 3.6 MB per million records over 300 s while the Python heap stayed flat. Pinned,
    0.23 MB (benchmarks/soak_rss.py)."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    log.debug("malloc mmap threshold pinned", bytes=MMAP_THRESHOLD, ok=done)
    return done


def freeze_long_lived() -> None:
    """Collect once, then move every object alive now out of the collector's sight
    (``gc.freeze``): call when start-up (or a refresh of the instrument tables) is done.

    A full collection traverses every tracked object: in ``run --sim`` about 140k of them (the
    modules, the instrument tables, the plans), 130 to 180 ms of CPU each time on the shared
    machine, every 4 to 6 s, because records waiting in the queue outlive the young collections
    and count towards the next full one. Those pauses held the writer while records queued up.
    Frozen, a full collection traverses only what was made after; frozen objects are still freed
    when nothing refers to them, and an unfreeze first lets this collection see the garbage
    cycles among the objects of an earlier freeze (yesterday's instrument table)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    log.debug("long-lived objects frozen", objects=gc.get_freeze_count())

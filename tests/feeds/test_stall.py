"""The read watchdog: a read waiting past its time is cancelled and reported as a stall; a
cancellation from outside is not taken for one; reads that keep coming never stall."""

from __future__ import annotations

import asyncio

import pytest

from shriven.feeds.stall import StallWatch


async def _read_loop(secs: float, reads: int, gap_s: float) -> str:
    watch = StallWatch(secs)
    try:
        for i in range(reads + 1):
            watch.reading()
            try:
                await asyncio.sleep(gap_s if i < reads else 3600)
            except asyncio.CancelledError:
                if not watch.stalled():
                    raise
                return f"stalled after {i} reads"
            watch.done()
        return "done"
    finally:
        watch.close()


async def test_a_read_waiting_past_its_time_is_a_stall_and_steady_reads_are_not() -> None:
    # 30 reads 10 ms apart span three times the 0.1 s limit; then one read never returns
    got = await asyncio.wait_for(_read_loop(0.1, 30, 0.01), 10)
    assert got == "stalled after 30 reads"


async def test_a_cancellation_from_outside_is_not_a_stall() -> None:
    task = asyncio.create_task(_read_loop(60.0, 0, 0.0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

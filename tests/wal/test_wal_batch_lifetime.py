"""The reader lets go of a frame's decoded batch before it reads and decodes the next one.

With two batches alive at every decode, pymalloc hands the new batch's objects blocks scattered
ever wider over the heap, and a long scan slowed frame by frame (0.55M records/s over the first
million of a 3M store, 0.27M/s at the end). No timing here: the test looks for the mechanism,
a list still holding the previous frame's records when the next frame is handed out."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from walcases import batches, records, write

from shriven.wal import Frame, WalReader


class _Watching(WalReader):
    """Before each frame after the first, counts the lists (other than the consumer's own)
    holding the item the consumer took last."""

    def __init__(self, directory: Path, taken: list[object]) -> None:
        super().__init__(directory)
        self.taken = taken
        self.holders: list[int] = []

    def frames(self, start_ns: int | None = None, end_ns: int | None = None) -> Iterator[Frame]:
        for frame in super().frames(start_ns, end_ns):
            if self.taken:
                refs = gc.get_referrers(self.taken[0])
                self.holders.append(sum(type(o) is list and o is not self.taken for o in refs))
            yield frame


@pytest.mark.parametrize("method", ["records", "wire"])
@pytest.mark.parametrize("ranged", [False, True])
def test_previous_batch_is_released_before_the_next_frame(tmp_path, method, ranged):
    recs = records(600)
    write(tmp_path, batches(recs, 100))
    taken: list[object] = []
    reader = _Watching(tmp_path, taken)
    # a range cutting through frames takes the filtering path as well
    lo, hi = (recs[50].recv_ns, recs[-50].recv_ns) if ranged else (None, None)
    n = 0
    for item in getattr(reader, method)(lo, hi):
        taken[:] = [item]
        n += 1
    assert n > 400
    assert len(reader.holders) >= 4
    assert reader.holders == [0] * len(reader.holders)

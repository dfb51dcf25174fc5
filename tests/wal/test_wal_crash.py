"""A writer process killed with SIGKILL mid-stream loses nothing it reported durable."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time

import pytest
from walcases import status

from shriven.sim.samples import sample_records
from shriven.wal import WalWriter, read_records

WRITER = """
import itertools, sys
from shriven.sim.samples import sample_records
from shriven.wal import WalWriter
directory, compression = sys.argv[1], sys.argv[2] == "1"
recs = sample_records(200_000, seed=11)
with WalWriter(directory, segment_size=256 * 1024, compression=compression,
               fsync_policy="interval", fsync_interval_ms=5) as w:
    for i in itertools.count():
        batch = list(itertools.islice(recs, 40))
        if not batch:
            break
        w.append(batch)
        if i % 25 == 24:
            w.sync()
            print("durable", w.records_synced, flush=True)
print("finished", flush=True)
"""


@pytest.mark.parametrize("compression", ["0", "1"])
def test_sigkill_mid_stream_leaves_an_in_order_prefix_with_every_durable_record(
    tmp_path, compression
):
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path), compression],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    durable = 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "writer exited before it was killed"
            assert not line.startswith("finished"), "writer finished before it was killed"
            durable = int(line.split()[1])
            if durable >= 10_000:
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert durable >= 10_000
    back = list(read_records(tmp_path, strict=True))
    assert len(back) >= durable
    assert back == list(itertools.islice(sample_records(200_000, seed=11), len(back)))
    with WalWriter(tmp_path, fsync_policy="never") as w:  # recovery, then appending works
        w.append([status(1, "after the crash")])
    assert list(read_records(tmp_path)) == [*back, status(1, "after the crash")]

"""Disk full and write errors: a clear WalError, and the segment stays readable."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest
from walcases import batches, records, segments, status

from shriven.errors import WalError
from shriven.wal import WalWriter, read_records

FILE_SIZE_LIMITED_WRITER = """
import json, resource, signal, sys
from shriven.errors import WalError
from shriven.sim.samples import sample_records
from shriven.wal import WalWriter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (48 * 1024, resource.RLIM_INFINITY))
recs = list(sample_records(5_000, seed=3))
errors = []
with WalWriter(sys.argv[1], compression=False, fsync_policy="always") as w:
    for i in range(0, len(recs), 30):
        try:
            w.append(recs[i : i + 30])
        except WalError as exc:
            errors.append(str(exc))
            if len(errors) == 2:
                break
    written = w.records_written
print(json.dumps({"errors": errors, "written": written}))
"""


def test_a_real_write_failure_mid_frame_leaves_the_segment_readable(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", FILE_SIZE_LIMITED_WRITER, str(tmp_path)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=60,
        check=True,
    )
    result = json.loads(out.stdout)
    assert len(result["errors"]) == 2
    (segment,) = segments(tmp_path)
    assert (
        f"cannot write WAL frame to {segment} at byte {segment.stat().st_size}"
        in (result["errors"][0])
    )
    assert "the segment is intact up to that byte" in result["errors"][0]
    expected = records(5_000, seed=3)
    assert 0 < result["written"] < 5_000
    assert list(read_records(tmp_path, strict=True)) == expected[: result["written"]]


def test_disk_full_raises_a_clear_error_and_appending_works_once_there_is_room(
    tmp_path, monkeypatch
):
    recs = records(600)
    good, failed, later = batches(recs, 200)
    real_writev = os.writev

    def disk_fills_halfway(fd, buffers):
        data = b"".join(buffers)
        os.write(fd, data[: len(data) // 2])  # some bytes land before the error, as on a real disk
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with WalWriter(tmp_path, fsync_policy="never") as w:
        w.append(good)
        size = segments(tmp_path)[0].stat().st_size
        monkeypatch.setattr(os, "writev", disk_fills_halfway)
        with pytest.raises(WalError, match="the disk is full"):
            w.append(failed)
        assert segments(tmp_path)[0].stat().st_size == size
        assert list(read_records(tmp_path)) == good
        monkeypatch.setattr(os, "writev", real_writev)
        w.append(later)
        assert w.records_written == 400
    assert list(read_records(tmp_path)) == good + later


def test_appending_to_a_closed_writer_is_a_wal_error(tmp_path):
    w = WalWriter(tmp_path, fsync_policy="never")
    w.close()
    with pytest.raises(WalError, match="closed"):
        w.append([status(1)])

"""One recorder per data directory: a second `shriven run` on the same store is refused before
it touches anything, and the directory is free again once the first stops (or dies)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from shriven.app.startup import wal_options
from shriven.config import PipelineConfig
from shriven.errors import ShrivenError, StoreLockedError
from shriven.pipeline.daemon import Pipeline
from shriven.pipeline.lock import DataDirLock


def segments(data_dir: Path) -> list[str]:
    return sorted(p.name for p in data_dir.glob("*/*.wal"))


async def test_a_second_recorder_on_the_same_store_is_refused_and_changes_nothing(
    tmp_path: Path,
) -> None:
    cfg = PipelineConfig(data_dir=tmp_path / "market")  # type: ignore[call-arg]
    first = Pipeline(cfg, wal=wal_options(cfg), health_port=None)
    await first.start()
    try:
        before = segments(cfg.data_dir)
        second = Pipeline(cfg, wal=wal_options(cfg), health_port=None)
        with pytest.raises(StoreLockedError, match=f"pid {os.getpid()}"):
            await second.start()
        assert segments(cfg.data_dir) == before  # no recovery, no new segment
    finally:
        await first.shutdown()
    again = Pipeline(cfg, wal=wal_options(cfg), health_port=None)
    await again.start()  # released at shutdown
    await again.shutdown()


def test_a_killed_holder_leaves_no_lock_behind(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path; from shriven.pipeline.lock import DataDirLock;"
        "DataDirLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreLockedError, match=f"pid {holder.pid}"):
            DataDirLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait(30)
    lock = DataDirLock(tmp_path)
    lock.acquire()  # the kernel dropped the dead process's lock; the stale file does not matter
    lock.release()


async def test_a_health_port_in_use_stops_the_start_before_the_store_is_touched(
    tmp_path: Path,
) -> None:
    cfg = PipelineConfig(data_dir=tmp_path / "market")  # type: ignore[call-arg]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        p = Pipeline(cfg, wal=wal_options(cfg), health_port=taken.getsockname()[1])
        with pytest.raises(ShrivenError, match="--health-port"):
            await p.start()
    assert segments(cfg.data_dir) == []  # no empty segment per failed start
    again = Pipeline(cfg, wal=wal_options(cfg), health_port=None)  # and the lock was let go
    await again.start()
    await again.shutdown()


def test_a_symlinked_lock_file_is_refused_and_its_target_left_alone(tmp_path: Path) -> None:
    data_dir = tmp_path / "market"
    data_dir.mkdir()
    target = tmp_path / "precious.txt"
    target.write_text("do not truncate me\n")
    (data_dir / ".shriven.lock").symlink_to(target)
    with pytest.raises(StoreLockedError, match=r"\.shriven\.lock is a symbolic link.*remove"):
        DataDirLock(data_dir).acquire()
    assert target.read_text() == "do not truncate me\n"

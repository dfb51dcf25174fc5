"""metadata.json: every ``*_ns`` number has its exact UTC text beside it (``first_ns`` ->
``first``), because JSON readers that parse numbers as float64 (JavaScript's JSON.parse) round
nanosecond times above 2^53."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from shriven.sim.samples import sample_records
from shriven.wal import METADATA_FILE, StoreWriter, WalOptions


def ns_fields(doc: object, where: str = "") -> list[tuple[str, dict, str]]:
    out = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key.endswith("_ns"):
                out.append((where + key, doc, key))
            out += ns_fields(value, f"{where}{key}.")
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += ns_fields(value, f"{where}{i}.")
    return out


def test_every_ns_time_has_its_iso_text_beside_it(tmp_path: Path) -> None:
    with StoreWriter(tmp_path, WalOptions(fsync_policy="never")) as store:
        store.append_ticks(list(sample_records(200)))
    doc = json.loads((tmp_path / METADATA_FILE).read_text())
    fields = ns_fields(doc)
    assert len(fields) > 6
    for where, parent, key in fields:
        ns = parent[key]
        twin = parent.get(key.removesuffix("_ns"), "missing")
        if ns is None:  # an empty WAL
            assert twin is None, where
            continue
        assert isinstance(ns, int) and ns > 2**53, where  # why the text twin is needed
        whole = datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        assert twin == f"{whole}.{ns % 10**9:09d}Z", where


def test_metadata_taken_on_another_thread_than_the_appends_counts_each_frame_once(
    tmp_path: Path,
) -> None:
    # Snapshot rounds write metadata.json on their own thread while ticks are appended: the
    # segment being written must be summed from one view of it (its size and index entries).
    import threading

    from shriven.wal.format import SEGMENT_HEADER_SIZE

    records = list(sample_records(20))
    seen: list[tuple[int, int, int]] = []
    with StoreWriter(tmp_path, WalOptions(fsync_policy="never", index_interval=256)) as store:
        stop = threading.Event()

        def append() -> None:
            while not stop.is_set():
                store.append_ticks(records)

        writer = threading.Thread(target=append)
        writer.start()
        try:
            for _ in range(100):
                seg = store.metadata()["streams"]["ticks"]["segments"][-1]  # type: ignore[index]
                seen.append((seg["bytes"], seg["frames"], seg["records"]))
        finally:
            stop.set()
            writer.join(10)
        frame = (store.ticks.bytes_written) // store.ticks.frames_written
        assert store.ticks.bytes_written == frame * store.ticks.frames_written  # equal frames
    assert len(seen) == 100 and seen[-1][1] > 0
    # each summary holds whole frames, each counted once: its bytes, frames and records agree
    assert all(b == SEGMENT_HEADER_SIZE + n * frame for b, n, _r in seen)
    assert all(r == 20 * n for _b, n, r in seen)


def test_metadata_skips_a_segment_removed_after_it_was_listed(tmp_path: Path) -> None:
    # Retention removes old segments on its own thread; a rotation's metadata write that listed
    # one just before its stat failed with FileNotFoundError, and the recorder reopened its store.
    # A dangling link is listed like a segment and is gone at its stat, as such a file is.
    from shriven.wal.store import segment_stream_counts

    with StoreWriter(tmp_path, WalOptions(fsync_policy="never")) as store:
        store.append_ticks(list(sample_records(50)))
        ticks = tmp_path / "ticks"
        real = sorted(p.name for p in ticks.glob("*.wal"))
        (ticks / "segment_00000099.wal").symlink_to(tmp_path / "removed.wal")
        doc = store.metadata()
        counts = segment_stream_counts(ticks, {})
        (ticks / "segment_00000099.wal").unlink()
    files = [s["file"] for s in doc["streams"]["ticks"]["segments"]]  # type: ignore[index]
    assert files == real and sorted(counts) == real

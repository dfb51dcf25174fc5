"""A three-node JetStream cluster with an R3 stream: a node, the publisher and the sink are
killed mid-stream, and the archive still holds every record of the recorder's WAL once."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import nats
import pytest

from .conftest import (
    NatsServer,
    archive_count,
    cluster,
    finish,
    keyed,
    kill,
    published,
    recorder_env,
    start_recorder,
    start_sink,
    wait_until,
    wal_records,
)


async def _stream_records(urls: list[str]) -> int:
    """Messages in the stream that are tick-WAL records (book snapshots are published too)."""
    nc = await nats.connect(servers=urls)
    try:
        info = await nc.jetstream().stream_info("SHRIVEN", subjects_filter=">")
        subjects = info.state.subjects or {}
        return sum(n for subject, n in subjects.items() if ".book_snapshot." not in subject)
    finally:
        await nc.close()


async def _jetstream_ready(urls: list[str]) -> bool:
    try:
        nc = await nats.connect(servers=urls, connect_timeout=1, max_reconnect_attempts=1)
    except Exception:
        return False
    try:
        await nc.jetstream(timeout=2).account_info()
        return True
    except Exception:
        return False
    finally:
        await nc.close()


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory: pytest.TempPathFactory):
    nodes = cluster(tmp_path_factory.mktemp("cluster"))
    for node in nodes:
        node.start()
    urls = [n.url for n in nodes]
    wait_until("a JetStream meta leader", lambda: asyncio.run(_jetstream_ready(urls)), 60, 0.5)
    yield nodes
    for node in nodes:
        node.stop()


def test_killing_a_node_the_publisher_and_the_sink_loses_and_duplicates_nothing(
    tmp_path: Path, three_nodes: list[NatsServer]
) -> None:
    urls = ",".join(n.url for n in three_nodes)
    data, archive = tmp_path / "market", tmp_path / "archive"
    env = recorder_env(
        tmp_path, SHRIVEN_NATS_REPLICAS="3", SHRIVEN_PIPELINE__SNAPSHOT_INTERVAL_SECS="5"
    )
    rec = start_recorder(tmp_path, data, urls, env=env)
    sink = start_sink(tmp_path, archive, urls, env=env)
    try:
        wait_until("publishing to the cluster", lambda: published(data) > 300, timeout=90)
        three_nodes[0].kill()  # a node dies while we publish
        before = published(data)
        wait_until("publishing past the dead node", lambda: published(data) > before + 300, 60)

        kill(rec)  # the publisher dies mid-stream (SIGKILL: no drain, no position save)
        rec = start_recorder(tmp_path, data, urls, env=env)
        after_restart = published(data)
        wait_until("the restarted publisher", lambda: published(data) > after_restart + 300, 90)

        wait_until("the sink to be busy", lambda: archive_count(archive / "rec1") > 300, 60)
        kill(sink)  # the sink dies mid-batch
        sink = start_sink(tmp_path, archive, urls, env=env)

        out = finish(rec)
        assert rec.returncode == 0, out
        wal = keyed(data / "ticks")
        assert published(data) == len(wal)
        wait_until(
            "every record in the archive",
            lambda: archive_count(archive / "rec1") >= len(wal),
            timeout=90,
            every=0.5,
        )
        out = finish(sink)
        assert sink.returncode == 0, out
        # the stream itself holds each record once: retries were absorbed by Nats-Msg-Id
        assert asyncio.run(_stream_records([n.url for n in three_nodes[1:]])) == len(wal)
    finally:
        for p in (rec, sink):
            if p.poll() is None:
                p.kill()
        three_nodes[0].start()
    held = keyed(archive / "rec1" / "ticks")
    twice = [k for k, n in Counter(held).items() if n > 1]
    assert not twice, twice[:5]
    assert sorted(held) == sorted(wal)
    snapshots = [(s.recv_ns, s.seq) for s in wal_records(archive / "rec1" / "lob")]
    assert len(set(snapshots)) == len(snapshots)  # none twice
    assert set(snapshots) <= {(s.recv_ns, s.seq) for s in wal_records(data / "lob")}
    assert len({run for run, _s, _q in wal}) == 2  # two runs of the recorder, both whole

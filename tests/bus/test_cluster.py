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
)


async def _stream_messages(urls: list[str]) -> int:
    nc = await nats.connect(servers=urls)
    try:
        return (await nc.jetstream().stream_info("SHRIVEN")).state.messages
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


@pytest.mark.xfail(
    strict=False,
    reason="open (issue 16): in about half the runs on a loaded 2-core machine the restarted sink "
    "stalls before the archive holds every record (90 s); on a quiet one it passes in ~20 s",
)
def test_killing_a_node_the_publisher_and_the_sink_loses_and_duplicates_nothing(
    tmp_path: Path, three_nodes: list[NatsServer]
) -> None:
    urls = ",".join(n.url for n in three_nodes)
    data, archive = tmp_path / "market", tmp_path / "archive"
    env = recorder_env(tmp_path, SHRIVEN_NATS_REPLICAS="3")
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
        assert asyncio.run(_stream_messages([n.url for n in three_nodes[1:]])) == len(wal)
    finally:
        for p in (rec, sink):
            if p.poll() is None:
                p.kill()
        three_nodes[0].start()
    held = keyed(archive / "rec1" / "ticks")
    twice = [k for k, n in Counter(held).items() if n > 1]
    assert not twice, twice[:5]
    assert sorted(held) == sorted(wal)
    assert len({run for run, _s, _q in wal}) == 2  # two runs of the recorder, both whole

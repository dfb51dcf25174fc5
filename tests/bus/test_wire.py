"""The bus's own protocol path over nats-py's connection (bus/wire.py), against a real server:
HPUB frames written in one burst arrive as the messages nats-py itself would have sent, a pull
inbox takes its consumer's messages raw and acks them, other subscriptions of the client are
left alone, a fetch returns what came without waiting for its request to fill, and all of it
goes on after the server restarts."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats
from nats.js.api import AckPolicy, ConsumerConfig

from shriven.bus.wire import PullInbox, header_block, header_value, hpub_frame, send_raw

from .conftest import NatsServer

HEADERS = header_block([("Nats-Msg-Id", "rec1:5:kite:7"), ("Shriven-Recv-Ns", "123")])


def test_a_header_value_is_found_by_its_exact_name() -> None:
    assert header_value(HEADERS, b"Nats-Msg-Id") == "rec1:5:kite:7"
    assert header_value(HEADERS, b"Shriven-Recv-Ns") == "123"
    assert header_value(HEADERS, b"nats-msg-id") is None
    assert header_value(HEADERS, b"Msg-Id") is None
    assert header_value(b"NATS/1.0\r\nA: 1", b"A") == "1"  # no final CRLF
    assert header_value(b"", b"A") is None


async def _burst(url: str) -> list[tuple[str, str, dict[str, str] | None, bytes]]:
    nc = await nats.connect(url)
    try:
        sub = await nc.subscribe("w.>")
        frames = [hpub_frame(f"w.{i}", f"back.{i}", HEADERS, bytes([i]) * i) for i in range(50)]
        await send_raw(nc, b"".join(frames))
        got = [await sub.next_msg(timeout=5) for _ in range(50)]
        return [(m.subject, m.reply, m.headers, m.data) for m in got]
    finally:
        await nc.close()


def test_hpub_frames_written_in_one_burst_arrive_as_messages_with_their_headers(
    nats_server: NatsServer,
) -> None:
    got = asyncio.run(_burst(nats_server.url))
    headers = {"Nats-Msg-Id": "rec1:5:kite:7", "Shriven-Recv-Ns": "123"}
    assert got == [(f"w.{i}", f"back.{i}", headers, bytes([i]) * i) for i in range(50)]


async def _pull(server: NatsServer) -> dict[str, object]:
    nc = await nats.connect(server.url, reconnect_time_wait=0.2, max_reconnect_attempts=-1)
    seen: dict[str, object] = {}
    try:
        js = nc.jetstream()
        await js.add_stream(name="WIRE", subjects=["wire.>"])
        for i in range(5):
            await js.publish(f"wire.{i}", b"x%d" % i, headers={"Nats-Msg-Id": f"id{i}"})
        config = ConsumerConfig(durable_name="raw", ack_policy=AckPolicy.EXPLICIT, ack_wait=30)
        await js.add_consumer("WIRE", config)
        other = await nc.subscribe("plain")  # not routed: still nats-py Msg objects
        inbox = PullInbox(nc, "WIRE", "raw")
        await inbox.start()
        t0 = time.monotonic()
        msgs = await inbox.fetch(1000, 10.0)  # what came, not waiting for 1000 or 10 s
        seen["waited"] = time.monotonic() - t0
        seen["first"] = [(s, d, header_value(h, b"Nats-Msg-Id")) for s, _r, d, h in msgs]
        await inbox.ack([r for _s, r, _d, _h in msgs])
        await nc.flush()
        info = await js.consumer_info("WIRE", "raw")
        seen["pending"] = (info.num_ack_pending, info.num_pending)
        await nc.publish("plain", b"hello")
        seen["other"] = (await other.next_msg(timeout=5)).data

        server.stop()  # the client reconnects; the inbox's subscription comes back with it
        server.start()
        for _ in range(100):
            if nc.is_connected:
                break
            await asyncio.sleep(0.1)
        for _ in range(20):  # JetStream takes a moment to recover the stream
            try:
                await js.publish("wire.9", b"after", headers={"Nats-Msg-Id": "id9"}, timeout=0.5)
                break
            except (nats.errors.TimeoutError, nats.js.errors.NoStreamResponseError):
                await asyncio.sleep(0.2)
        later: list = []
        for _ in range(20):
            later += await inbox.fetch(10, 0.5)
            if later:
                break
        seen["after"] = [(s, d) for s, _r, d, _h in later]
    finally:
        await nc.close()
    return seen


def test_a_pull_inbox_takes_messages_raw_acks_them_and_survives_a_server_restart(
    tmp_path: Path,
) -> None:
    server = NatsServer(tmp_path, "wire").start()
    try:
        seen = asyncio.run(_pull(server))
    finally:
        server.stop()
    assert seen["first"] == [(f"wire.{i}".encode(), b"x%d" % i, f"id{i}") for i in range(5)]
    assert seen["waited"] < 5.0
    assert seen["pending"] == (0, 0)
    assert seen["other"] == b"hello"
    assert seen["after"] == [(b"wire.9", b"after")]


async def _refused(url: str) -> tuple[int, dict[str, int]]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="GONE", subjects=["gone.>"])
        await js.add_consumer("GONE", ConsumerConfig(durable_name="c", ack_policy="explicit"))
        inbox = PullInbox(nc, "GONE", "c")
        await inbox.start()
        await js.delete_consumer("GONE", "c")
        fetches = 0
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert await inbox.fetch(100, 1.0) == []
            fetches += 1
        return fetches, inbox.statuses
    finally:
        await nc.close()


def test_a_pull_request_the_server_refuses_is_asked_again_after_a_pause_not_at_once(
    nats_server: NatsServer,
) -> None:
    fetches, statuses = asyncio.run(_refused(nats_server.url))
    assert statuses  # the refusal is counted (and logged once by the sink)
    assert fetches <= 6

"""The one connection loop against a loopback websocket server: cuts, stalls, refused
handshakes, back-off resets, errors in the venue's code, cancellation, connected state."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from shriven.feeds.base import FeedStats
from shriven.feeds.connection import (
    Backoff,
    Link,
    LoopPolicy,
    OpenLinks,
    Reconnect,
    run_connection,
)


@dataclass
class Peer:
    """What the loopback server does with each connection, in order of arrival."""

    refuse: list[int] = field(default_factory=list)  # HTTP statuses for the next handshakes
    messages_per_connection: int = 3  # -1: send nothing
    keep_open: bool = False  # after the messages; else it closes the connection
    handshakes: int = 0
    opened: int = 0

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        self.handshakes += 1
        if self.refuse:
            return conn.respond(HTTPStatus(self.refuse.pop(0)), "refused\n")
        return None

    async def handler(self, conn: ServerConnection) -> None:
        self.opened += 1
        assert await conn.recv() == "subscribe"
        for n in range(max(0, self.messages_per_connection)):
            await conn.send(json.dumps({"conn": self.opened, "n": n}))
        if self.keep_open or self.messages_per_connection < 0:
            await conn.wait_closed()
        else:
            await conn.close()


@dataclass
class RecordingLink(Link):
    """A link that keeps what the loop told it."""

    target: str
    index: int = 0
    markers: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    received_data: list[str | bytes] = field(default_factory=list)
    refusals: list[int] = field(default_factory=list)
    retry_refused: bool = False
    on_message: Callable[[str | bytes], None] | None = None
    closes: int = 0

    async def url(self) -> str:
        return self.target

    async def opened(self, ws: ClientConnection) -> Mapping[str, object]:
        await ws.send("subscribe")
        return {"streams": ["a", "b"]}

    async def received(self, data: str | bytes, recv_ns: int) -> None:
        self.received_data.append(data)
        if self.on_message is not None:
            self.on_message(data)

    async def mark(self, kind: str, detail: str) -> None:
        self.markers.append((kind, json.loads(detail)))

    async def closed(self) -> None:
        self.closes += 1

    async def refused(self, status: int) -> bool:
        self.refusals.append(status)
        return self.retry_refused

    def kinds(self) -> list[str]:
        return [k for k, _ in self.markers]

    def reasons(self) -> list[object]:
        return [d["reason"] for k, d in self.markers if k == "disconnected"]


class CeilingRng(random.Random):
    """Draws the top of each back-off range, and keeps the ranges asked for."""

    def __init__(self) -> None:
        super().__init__(0)
        self.ceilings: list[float] = []

    def uniform(self, a: float, b: float) -> float:
        self.ceilings.append(b)
        return b


@pytest.fixture
async def peer() -> AsyncIterator[tuple[Peer, str]]:
    p = Peer()
    server: Server = await serve(p.handler, "127.0.0.1", 0, process_request=p.process_request)
    port = next(iter(server.sockets)).getsockname()[1]
    try:
        yield p, f"ws://127.0.0.1:{port}/"
    finally:
        server.close()
        await server.wait_closed()


def policy(**kw: object) -> LoopPolicy:
    base: dict[str, object] = {
        "venue": "test",
        "reconnect_min_secs": 0.01,
        "reconnect_max_secs": 0.08,
        "stall_secs": 5.0,
        "open_timeout_secs": 5.0,
        "close_timeout_secs": 1.0,
    }
    return LoopPolicy(**(base | kw))  # type: ignore[arg-type]


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


class Loop:
    """``async with Loop(...) as task``: run_connection in a task, cancelled on exit."""

    def __init__(
        self, link: Link, pol: LoopPolicy, stats: FeedStats, links: OpenLinks, rng: random.Random
    ) -> None:
        self.args = (link, pol, stats, links, rng)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> asyncio.Task[None]:
        self.task = asyncio.create_task(run_connection(*self.args))
        return self.task

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


def loop_of(
    link: Link, pol: LoopPolicy, rng: random.Random | None = None
) -> tuple[Loop, FeedStats]:
    stats = FeedStats("test")
    return Loop(link, pol, stats, OpenLinks(stats, "any"), rng or random.Random(1)), stats


async def test_a_cut_connection_is_marked_closed_and_reconnected(peer: tuple[Peer, str]) -> None:
    p, url = peer
    link = RecordingLink(url)
    loop, stats = loop_of(link, policy())
    async with loop:
        await until(lambda: p.opened >= 3 and len(link.reasons()) >= 3)
    assert link.kinds()[:6] == ["connected", "disconnected"] * 3
    assert link.markers[0] == ("connected", {"shard": 0, "streams": ["a", "b"]})
    assert all(str(r).startswith("connection closed: ") for r in link.reasons()[:3])
    assert link.received_data[:3] == [json.dumps({"conn": 1, "n": n}) for n in range(3)]
    assert stats.connections >= 3 and stats.reconnects >= 2 and stats.messages >= 9
    assert stats.connected is False and link.closes == stats.connections


async def test_silence_past_stall_secs_ends_the_connection_with_the_venues_reason(
    peer: tuple[Peer, str],
) -> None:
    p, url = peer
    p.messages_per_connection = -1
    link = RecordingLink(url)
    loop, stats = loop_of(link, policy(stall_secs=0.2, stall_reason="quiet for {secs:g}s"))
    async with loop:
        await until(lambda: len(link.reasons()) >= 2)
    assert link.reasons()[:2] == ["quiet for 0.2s", "quiet for 0.2s"]
    assert p.opened >= 2 and stats.messages == 0


async def test_a_refused_handshake_the_link_answers_is_retried_at_once(
    peer: tuple[Peer, str],
) -> None:
    p, url = peer
    p.refuse = [403]
    p.keep_open = True
    link = RecordingLink(url, retry_refused=True)
    rng = CeilingRng()
    loop, stats = loop_of(link, policy(), rng)
    async with loop:
        await until(lambda: len(link.received_data) >= 3)
    assert link.refusals == [403]
    assert p.handshakes == 2 and link.reasons() == ["stopped"]
    # no back-off and no reconnect between the refusal and the connection
    assert stats.connections == 1 and stats.reconnects == 0 and rng.ceilings == []


async def test_a_refused_handshake_backs_off_and_marks_nothing(peer: tuple[Peer, str]) -> None:
    p, url = peer
    p.refuse = [503, 503, 503]
    link = RecordingLink(url)
    rng = CeilingRng()
    loop, stats = loop_of(link, policy(), rng)
    async with loop:
        # the peer closes after its messages: wait for that, not only the first marker
        await until(lambda: len(link.markers) >= 2)
    assert link.refusals == [503, 503, 503]
    assert link.kinds() == ["connected", "disconnected"] and link.closes == 1
    assert stats.reconnects == 3
    assert rng.ceilings[:3] == [0.01, 0.02, 0.04]  # growing while nothing opens


async def test_a_closed_port_backs_off_up_to_the_ceiling() -> None:
    link = RecordingLink("ws://127.0.0.1:1/")
    rng = CeilingRng()
    loop, stats = loop_of(link, policy(), rng)
    async with loop:
        await until(lambda: len(rng.ceilings) >= 6)
    assert rng.ceilings[:6] == [0.01, 0.02, 0.04, 0.08, 0.08, 0.08]
    assert link.markers == [] and stats.connections == 0


@pytest.mark.parametrize(
    ("reset", "messages", "ceilings"),
    [
        ("on_open", 0, [0.01, 0.01, 0.01]),  # an opened connection resets the back-off
        ("on_data", 0, [0.01, 0.02, 0.04]),  # opened and dropped without data: keeps growing
        ("on_data", 2, [0.01, 0.01, 0.01]),  # data arrived: reset
    ],
)
async def test_the_backoff_resets_on_the_policys_condition(
    peer: tuple[Peer, str], reset: str, messages: int, ceilings: list[float]
) -> None:
    p, url = peer
    p.messages_per_connection = messages
    link = RecordingLink(url)
    rng = CeilingRng()
    loop, _stats = loop_of(link, policy(reset_backoff=reset), rng)
    async with loop:
        await until(lambda: len(rng.ceilings) >= 3)
    assert rng.ceilings[:3] == ceilings


async def test_an_error_in_the_venue_code_restarts_the_connection_when_the_policy_says_so(
    peer: tuple[Peer, str],
) -> None:
    _p, url = peer

    def bug(data: str | bytes) -> None:
        if '"n": 1' in str(data):
            raise KeyError("bug")

    link = RecordingLink(url, on_message=bug)
    loop, stats = loop_of(link, policy(restart_on_error=True))
    async with loop:
        await until(lambda: len(link.reasons()) >= 2)
    assert link.reasons()[:2] == ["internal error: KeyError"] * 2
    assert stats.errors_by_kind["internal_error"] == stats.task_restarts


async def test_an_error_in_the_venue_code_ends_the_loop_otherwise(peer: tuple[Peer, str]) -> None:
    _p, url = peer

    def bug(data: str | bytes) -> None:
        raise KeyError("bug")

    link = RecordingLink(url, on_message=bug)
    stats = FeedStats("test")
    with pytest.raises(KeyError):
        async with asyncio.timeout(20):
            await run_connection(link, policy(), stats, OpenLinks(stats, "any"))
    assert link.kinds() == ["connected", "disconnected"] and link.closes == 1
    assert stats.task_restarts == 0 and stats.connected is False


async def test_reconnect_raised_by_the_link_names_the_reason(peer: tuple[Peer, str]) -> None:
    _p, url = peer

    def shutdown(data: str | bytes) -> None:
        raise Reconnect("venue announced server shutdown")

    link = RecordingLink(url, on_message=shutdown)
    loop, stats = loop_of(link, policy())
    async with loop:
        await until(lambda: len(link.reasons()) >= 1)
    assert link.reasons()[0] == "venue announced server shutdown"
    assert stats.task_restarts == 0


async def test_a_cancelled_loop_still_marks_the_connection_stopped(peer: tuple[Peer, str]) -> None:
    p, url = peer
    p.messages_per_connection = -1
    link = RecordingLink(url)
    loop, stats = loop_of(link, policy())
    async with loop:
        await until(lambda: stats.connected)
    assert link.kinds() == ["connected", "disconnected"]
    assert link.reasons() == ["stopped"] and stats.connected is False


def test_connected_means_any_or_all_links_open() -> None:
    any_stats, all_stats = FeedStats("a"), FeedStats("b")
    any_links, all_links = OpenLinks(any_stats, "any"), OpenLinks(all_stats, "all")
    for links in (any_links, all_links):
        links.add(0)
        links.add(1)
        links.set_open(0, True)
    assert any_stats.connected is True and all_stats.connected is False
    all_links.set_open(1, True)
    assert all_stats.connected is True
    all_links.set_open(0, False)
    any_links.set_open(0, False)
    assert all_stats.connected is False and any_stats.connected is False
    assert all_stats.down_since_ns > 0


def test_backoff_doubles_to_its_ceiling_with_jitter_in_the_upper_half() -> None:
    b = Backoff(0.5, 3.0, random.Random(7))
    delays = [b.next_delay() for _ in range(6)]
    for delay, ceiling in zip(delays, [0.5, 1.0, 2.0, 3.0, 3.0, 3.0], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    b.reset()
    assert 0.25 <= b.next_delay() <= 0.5

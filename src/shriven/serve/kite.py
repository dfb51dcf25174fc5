"""The Kite ticker endpoints: ``/kite`` (live) and ``/kite/history/<start>/<end>/<speed>``.

``KiteTicker(api_key, access_token, root="ws://127.0.0.1:PORT/kite")`` connects unmodified: it
appends ``?api_key=..&access_token=..`` (the access token is the server's API key when one is
set), sends the ticker's JSON control messages and reads binary packets in the layouts Kite
sends, 1-byte heartbeats in silence, and Kite's text messages (order updates, errors, messages)
as they were received. A token nothing is recorded for is accepted and stays silent, as Kite does
for a token that does not tick. History starts at the client's first subscribe and ends with a
close frame (1000) saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from shriven.errors import ReplayError
from shriven.events import KiteTick, Status, StatusKind
from shriven.serve.clients import Client
from shriven.serve.core import Core
from shriven.serve.kite_wire import KiteSubscriptions, MessageEncoder

if TYPE_CHECKING:
    from shriven.serve.history import Pacer, Settle

__all__ = ["kite_history", "kite_live"]


def _on_text(
    subs: KiteSubscriptions,
    settle: Settle | None = None,
    changed: Callable[[], None] = lambda: None,
) -> Callable[[Client, str], None]:
    def on_text(client: Client, text: str) -> None:
        for reply in subs.control(text):
            client.offer(reply)
        changed()
        if settle is not None:
            settle.control(bool(subs.modes))

    return on_text


async def kite_live(core: Core, request: web.Request) -> web.StreamResponse:
    live = core.live
    subs = KiteSubscriptions(core.options.max_subscriptions)
    refuse = None
    if live is None:
        refuse = "no live data: this server replays a store; use /kite/history/START/END/SPEED"
    if live is None:
        return await core.websocket(request, "kite", _on_text(subs), heartbeat=True, refuse=refuse)
    return await core.websocket(
        request,
        "kite",
        _on_text(subs, changed=lambda: live.regroup("kite")),
        heartbeat=True,
        register=lambda c: live.add("kite", c, subs),
        unregister=lambda c: live.remove("kite", c),
    )


async def kite_history(core: Core, request: web.Request) -> web.StreamResponse:
    # Imported here: the live server's process never loads the store's readers (its start-up).
    from shriven.replay import Selection
    from shriven.serve.history import (
        Pacer,
        Settle,
        check_range,
        end_of_history,
        parse_range,
        read_chunks,
    )

    selection = Selection(frozenset({"ticks", "status"}), "kite")
    m = request.match_info
    refuse = None
    try:
        if core.data_dir is None:
            raise ReplayError("this server has no store to replay")
        rng = parse_range(m["start"], m["end"], m["speed"], core.zone)
        await asyncio.to_thread(check_range, core.data_dir, rng, core.zone)
    except ReplayError as exc:
        refuse = str(exc)
    subs = KiteSubscriptions(core.options.max_subscriptions)
    settle = Settle()

    async def produce(client: Client) -> None:
        assert core.data_dir is not None
        await settle.wait()
        pacer = Pacer(rng.speed)
        sent = 0
        # closed here, not by the collector: its reader thread stops at once
        async with contextlib.aclosing(read_chunks(core.data_dir, selection, rng)) as chunks:
            async for chunk in chunks:
                run: list[KiteTick] = []
                for r in chunk:
                    if type(r) is KiteTick:
                        if run and r.recv_ns != run[0].recv_ns:
                            sent += await _send_run(client, subs, run, pacer)
                            run = []
                        run.append(r)
                        continue
                    if run:
                        sent += await _send_run(client, subs, run, pacer)
                        run = []
                    if type(r) is Status and r.kind == StatusKind.VENUE_MESSAGE:
                        await pacer.wait(r.recv_ns)
                        await client.put(r.detail)
                        sent += 1
                if run:
                    sent += await _send_run(client, subs, run, pacer)
        await end_of_history(client, rng, core.zone, sent)

    return await core.websocket(
        request,
        "kite",
        _on_text(subs, settle),
        heartbeat=True,
        refuse=refuse,
        produce=produce if refuse is None else None,
    )


async def _send_run(
    client: Client, subs: KiteSubscriptions, run: list[KiteTick], pacer: Pacer
) -> int:
    message = MessageEncoder([run]).message_for(subs)
    if message is None:
        return 0
    await pacer.wait(run[0].recv_ns)
    await client.put(message)
    return 1

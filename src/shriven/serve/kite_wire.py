"""Kite ticker messages from records, per client subscription. Pure: no I/O.

A recorded tick is re-encoded with :func:`shriven.feeds.kite.protocol.encode_packet`: every
field of the packet's layout is in the record, so the packet is byte-equal to the one Kite sent.
A client that asked for a smaller mode than was recorded gets the smaller layout (a full tick
serves quote and LTP subscribers); one that asked for more gets what was recorded. Ticks that
arrived in one venue message share a receive time, and go out as one message again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

from shriven.events import (
    KITE_MODES,
    KITE_SEGMENT_INDICES,
    KiteTick,
    Record,
    decode_wire,
    unpack_batch,
)
from shriven.feeds.kite.protocol import (
    INDEX_FULL_LEN,
    INDEX_QUOTE_LEN,
    LTP_LEN,
    QUOTE_LEN,
    encode_message,
    encode_packet,
    encode_wire_packet,
)

__all__ = [
    "DEFAULT_MODE",
    "HEARTBEAT",
    "KiteSubscriptions",
    "MessageEncoder",
    "WireTick",
    "group_by_receipt",
    "live_records",
    "packet",
]

HEARTBEAT: Final = b"\x00"
DEFAULT_MODE: Final = "quote"  # what Kite streams after a bare subscribe
_RANK: Final = {m: i for i, m in enumerate(KITE_MODES)}


# A smaller mode's packet is the start of a larger one's: its length, by mode and index-ness.
_PREFIX: Final = {
    ("ltp", False): LTP_LEN,
    ("ltp", True): LTP_LEN,
    ("quote", False): QUOTE_LEN,
    ("quote", True): INDEX_QUOTE_LEN,
    ("full", True): INDEX_FULL_LEN,
}


@dataclass(slots=True)
class WireTick:
    """A recorded Kite tick as the live fan-out needs it: its receipt, token and mode, and its
    packet as Kite sent it, built from the WAL's wire array without decoding a KiteTick."""

    recv_ns: int
    instrument_token: int
    mode: str
    packet: bytes


def live_records(payload: bytes, *, kite: bool = True) -> list[Record | WireTick]:
    """A written batch's payload (``events.encode_batch``) for the live fan-out: Kite ticks as
    :class:`WireTick` (or left out, when no Kite client is connected: ``kite=False``), every
    other record decoded."""
    out: list[Record | WireTick] = []
    for w in unpack_batch(payload):
        if w[0] == 1:
            if not kite:
                continue
            pk = encode_wire_packet(w)
            if pk is not None:
                out.append(WireTick(w[2], w[4], KITE_MODES[w[5]], pk))
                continue
        out.append(decode_wire(w))
    return out


def packet(tick: KiteTick | WireTick, mode: str) -> bytes:
    """``tick``'s wire payload in ``mode`` or, when less was recorded, in the recorded mode."""
    index = tick.instrument_token & 0xFF == KITE_SEGMENT_INDICES
    whole = tick.packet if type(tick) is WireTick else encode_packet(tick, index=index)  # type: ignore[arg-type, union-attr]
    if _RANK[mode] < _RANK[tick.mode]:
        return whole[: _PREFIX[(mode, index)]]
    return whole


def group_by_receipt(records: Sequence[Record]) -> Iterator[list[KiteTick]]:
    """Runs of Kite ticks with one receive time (one venue message each), in order."""
    run: list[KiteTick] = []
    for r in records:
        if type(r) is not KiteTick:
            continue
        if run and r.recv_ns != run[0].recv_ns:
            yield run
            run = []
        run.append(r)  # type: ignore[arg-type]
    if run:
        yield run


@dataclass(slots=True)
class KiteSubscriptions:
    """One client's tokens and their modes, as the ticker's control messages set them.
    ``key`` is equal for clients with equal subscriptions (they share encoded messages)."""

    limit: int
    modes: dict[int, str] = field(default_factory=dict)
    key: tuple[tuple[int, str], ...] = ()

    def control(self, text: str) -> list[str]:
        """Apply one text message from the client; returns the text messages to answer with
        (Kite's ``{"type": "error", "data": ...}``)."""
        try:
            msg = json.loads(text)
            action, value = msg["a"], msg["v"]
        except (ValueError, KeyError, TypeError, RecursionError):
            return [_error('invalid message: send {"a": "subscribe", "v": [tokens]}')]
        replies: list[str] = []
        if action in ("subscribe", "unsubscribe"):
            tokens = _tokens(value)
            if tokens is None:
                return [_error(f"invalid {action}: v must be a list of instrument tokens")]
            if action == "unsubscribe":
                for t in tokens:
                    self.modes.pop(t, None)
            else:
                for t in tokens:
                    if t in self.modes:
                        continue
                    if len(self.modes) >= self.limit:
                        replies.append(_error(f"maximum instruments reached ({self.limit})"))
                        break
                    self.modes[t] = DEFAULT_MODE
        elif action == "mode":
            ok = isinstance(value, list) and len(value) == 2 and value[0] in _RANK
            tokens = _tokens(value[1]) if ok else None
            if tokens is None:
                return [_error('invalid mode: v must be ["ltp"|"quote"|"full", [tokens]]')]
            for t in tokens:
                if t in self.modes:
                    self.modes[t] = value[0]
        else:
            return [
                _error(f"unknown action {str(action)[:40]!r}: use subscribe, unsubscribe, mode")
            ]
        self.key = tuple(sorted(self.modes.items()))
        return replies


def _tokens(value: object) -> list[int] | None:
    if not isinstance(value, list):
        return None
    out = []
    for v in value:
        if type(v) is not int or not 0 <= v < 2**32:
            return None
        out.append(v)
    return out


def _error(text: str) -> str:
    return json.dumps({"type": "error", "data": text})


class MessageEncoder:
    """Messages for runs of ticks, per subscription: each packet encoded once per mode, each
    client's messages built once per distinct subscription. ``max_packets`` > 0 joins the runs
    into messages of up to that many packets (the live fan-out under load: one send per client
    per batch, not per venue message); 0 keeps one message per run (history, exact framing)."""

    __slots__ = ("_max_packets", "_messages", "_packets", "_runs")

    def __init__(self, runs: list[list[KiteTick | WireTick]], max_packets: int = 0) -> None:
        self._runs = runs
        self._max_packets = max_packets
        self._packets: dict[tuple[int, str], bytes] = {}
        self._messages: dict[tuple[tuple[int, str], ...], list[bytes]] = {}

    def messages_for(self, subs: KiteSubscriptions) -> list[bytes]:
        """The messages a client with ``subs`` gets (none when no tick is for it)."""
        try:
            return self._messages[subs.key]
        except KeyError:
            pass
        modes = subs.modes
        cache = self._packets
        out: list[bytes] = []
        joined: list[bytes] = []
        limit = self._max_packets
        for run in self._runs:
            packets = []
            for t in run:
                mode = modes.get(t.instrument_token)
                if mode is None:
                    continue
                k = (id(t), mode)
                pk = cache.get(k)
                if pk is None:
                    pk = cache[k] = packet(t, mode)
                packets.append(pk)
            if not packets:
                continue
            if not limit:
                out.append(encode_message(packets))
                continue
            if len(joined) + len(packets) > limit and joined:
                out.append(encode_message(joined))
                joined = []
            joined.extend(packets)
        if joined:
            out.append(encode_message(joined))
        self._messages[subs.key] = out
        return out

    def message_for(self, subs: KiteSubscriptions) -> bytes | None:
        """One run's message (``MessageEncoder([run])``), or None when no tick is for it."""
        messages = self.messages_for(subs)
        return messages[0] if messages else None

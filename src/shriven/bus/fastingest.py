"""JetStream's fast-ingest batch publishing (ADR-50, nats-server 2.14+), the wire part (pure).

A fast batch is a run of ordinary messages whose reply subject carries the control data:
``<inbox>.<batch id>.<flow>.<gap mode>.<batch seq>.<op>.$FI``. The server stores each message
as it comes (``Nats-Msg-Id`` de-duplication still applies) and, instead of one ack per message,
sends a flow ack to that reply subject every ``flow`` messages: ``{"type":"ack","seq":K}`` means
(in gap mode ``fail``) every message of the batch up to K is stored. A gap or an error ends the
batch; the end of a batch (op 3 "end of batch", which stores nothing, or the server ending it)
is answered with a PubAck-like ``{"stream":..., "seq":..., "batch":..., "count":N}``: the first
N messages are stored. (A ping, op 4, only repeats the last flow ack, so it cannot acknowledge a
tail short of ``flow``; ending the batch when the feed pauses does.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

START: Final = 0
ADD: Final = 1
EOB: Final = 3  # end of batch: commits, stores nothing

# What we ask for; the server may ack more often (it answered 500 to 1000 here, nats-server 2.15).
FLOW: Final = 1000
# A batch the server has not heard from for 10 s is abandoned; we start a new one well before.
IDLE_S: Final = 4.0

ACK: Final = "ack"  # every message up to ``seq`` stored
FAILED: Final = "failed"  # gap or error: the batch is over, what was not acked goes again
ENDED: Final = "ended"  # the batch's closing PubAck: messages 1..``seq`` stored


def reply_prefix(inbox: str, batch: str, flow: int = FLOW) -> str:
    """What every reply subject of one batch starts with (gap mode ``fail``: a lost message
    ends the batch rather than leaving a hole behind an ack)."""
    return f"{inbox}.{batch}.{flow}.fail."


def reply_subject(prefix: str, seq: int, op: int) -> str:
    return f"{prefix}{seq}.{op}.$FI"


def batch_of(subject: str) -> str | None:
    """The batch id a reply was sent for, or None when ``subject`` is not a fast-ingest reply."""
    if not subject.endswith(".$FI"):
        return None
    parts = subject.split(".")
    return parts[-6] if len(parts) >= 7 else None


@dataclass(frozen=True, slots=True)
class Reply:
    kind: str  # ACK, FAILED or ENDED
    seq: int  # for ACK and ENDED: the batch seq up to which everything is stored
    text: str = ""  # for FAILED: what the server said


def parse_reply(data: bytes) -> Reply:
    """The server's answer on a batch's reply subject."""
    try:
        doc = json.loads(data) if data else {}
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return Reply(FAILED, 0, f"unreadable reply {data[:80]!r}")
    kind = doc.get("type")
    if kind == "ack":
        return Reply(ACK, int(doc.get("seq") or 0))
    if kind == "gap":
        return Reply(FAILED, 0, f"gap: expected {doc.get('last_seq')}, got {doc.get('seq')}")
    if kind == "err" or "error" in doc:
        err = doc.get("error")
        text = err.get("description", str(err)) if isinstance(err, dict) else str(err)
        return Reply(FAILED, 0, text)
    if "count" in doc:
        return Reply(ENDED, int(doc.get("count") or 0))
    return Reply(FAILED, 0, f"unexpected reply {data[:80]!r}")

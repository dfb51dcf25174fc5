"""The recorder's live parity watch: fed the records as written, it counts a planted violation in
its metrics and queues one status record when it opens and one when it closes."""

from __future__ import annotations

import json
from datetime import date

from prometheus_client import CollectorRegistry
from tests.analytics.chain_store import NS, T0, TODAY

from shriven.app.parity_tap import PARITY_KIND, ParityTap, chain_universes
from shriven.events import Status
from shriven.pipeline.queue import RecordQueue
from shriven.sim.chain_records import Plant, chain_instruments, chain_ticks
from shriven.universe import InstrumentTable


def test_a_planted_violation_is_counted_and_marked_when_it_opens_and_closes() -> None:
    rows = chain_instruments(TODAY, ("NIFTY",), strikes=3)
    table = InstrumentTable(rows)
    call = next(r for r in rows if r.instrument_type == "CE" and r.strike == 25_000.0)
    queue = RecordQueue(maxsize=1_000)
    registry = CollectorRegistry()
    tap = ParityTap(chain_universes(table, [256265]), 1.0, 0.065, queue, registry)
    plant = Plant(call.instrument_token, T0 + 5 * NS, T0 + 8 * NS, 2.5)
    ticks = list(chain_ticks(rows, T0, T0 + 12 * NS, NS, spot_vol=0.0, plant=plant))
    for i in range(0, len(ticks), 50):  # batches, as the recorder loop hands them over
        tap(ticks[i : i + 50])

    def sample(name: str) -> float | None:
        return registry.get_sample_value(name, {"underlying": "NIFTY"})

    assert sample("shriven_parity_violations_opened_total") == 1.0
    assert sample("shriven_parity_violations_closed_total") == 1.0
    assert sample("shriven_parity_violations_open") == 0.0
    marks = [r for r in queue.take(1_000) if type(r) is Status]
    assert [(m.venue, m.kind) for m in marks] == [("analytics", PARITY_KIND)] * 2
    assert [m.seq for m in marks] == [1, 2]
    opened, closed = (json.loads(m.detail) for m in marks)
    assert (opened["state"], closed["state"]) == ("opened", "closed")
    assert opened["strike"] == 25_000.0 and opened["expiry"] == call.expiry.isoformat()
    assert opened["tick_ns"] // NS == (T0 + 5 * NS) // NS
    assert closed["tick_ns"] // NS == (T0 + 8 * NS) // NS
    assert 2.25 <= opened["edge"] <= 2.5
    assert date.fromisoformat(opened["expiry"]) >= TODAY

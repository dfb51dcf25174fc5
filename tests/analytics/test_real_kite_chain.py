"""A chain whose spot is the real Kite full packet from the official client's fixtures (INFY,
token 408065, with its real depth), decoded by our parser and recorded through the real WAL; the
options around it priced from the simulator's surface: the table, the formats and the plot."""

from __future__ import annotations

import base64
import io
import math
import struct
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq

from shriven.analytics.expiry import expiry_ns
from shriven.events import KiteTick, SeqCounter, Status
from shriven.feeds.kite.protocol import parse_message
from shriven.replay import replay_chain
from shriven.sim.kite_instruments import IndexSpec, generate_instruments
from shriven.sim.surface import DEFAULT_SURFACE, PricedInstrument
from shriven.universe.recorded import record_instruments
from shriven.wal import StoreWriter

IST = ZoneInfo("Asia/Kolkata")
INFY = IndexSpec("INFY", "INFY", 408065, 1573.7, 20, 300, weekly=False, near=5, far=0,
                 spot_segment="NSE")  # fmt: skip


def _real_tick(kite_fixtures: Path) -> KiteTick:
    payload = base64.b64decode((kite_fixtures / "ticker_full.packet").read_text())
    message = struct.pack(">HH", 1, len(payload)) + payload
    (tick,) = parse_message(message, 0, SeqCounter())
    return tick


def test_the_chain_around_the_real_kite_packet(kite_fixtures: Path, tmp_path: Path) -> None:
    spot = _real_tick(kite_fixtures)
    assert spot.instrument_token == 408065 and spot.last_price == 157_370  # paise, as sent
    at_s = spot.exchange_timestamp  # 2021-07-05 10:41:27 IST
    rows = [r for r in generate_instruments(date(2021, 7, 5), [INFY]) if "INFY" in r.name]
    data = tmp_path / "market"
    data.mkdir()
    record_instruments(data, rows)
    recv = at_s * 1_000_000_000
    spot.recv_ns, spot.seq = recv, 1
    records: list = [Status(recv - 1, 1, "system", "started", "", "{}"), spot]  # type: ignore[type-arg]
    rupees = spot.last_price / 100
    for i, r in enumerate(r for r in rows if r.expiry is not None):
        p = PricedInstrument(408065, r.instrument_type, r.strike, expiry_ns(r.expiry))  # type: ignore[arg-type]
        theo = DEFAULT_SURFACE.price(rupees, p, recv)
        bid = int(theo * 100) // 5 * 5
        records.append(
            KiteTick(
                recv + 1_000 * (i + 1),
                i + 2,
                r.instrument_token,
                "full",
                bid,
                oi=1_000,
                bids=((bid, 300, 2),),
                asks=((bid + 5, 600, 3),),
            )
        )
    store = StoreWriter(data)
    store.append_ticks(records)
    store.close()

    at = recv + 1_000_000_000
    table = io.StringIO()
    png = tmp_path / "infy.png"
    result = replay_chain(data, "INFY", table, IST, at_ns=at, expiry="all", plot=png)
    text = table.getvalue()
    assert text.startswith("INFY at 2021-07-05T10:41:28.000000000+05:30: spot 1573.70")
    assert text.count("expiry 2021-") == 3  # three monthly expiries listed and recorded
    assert "no quote in range" not in text and "*" in text
    assert result.legs == 3 * 11 * 2
    head = png.read_bytes()[:24]
    assert struct.unpack(">II", head[16:24]) == (1000, 1600)  # three smiles and the term structure
    assert result.plot is not None and result.plot.panels[-1][1:] == (
        "days to expiry",
        "ATM implied volatility (%)",
    )
    out = tmp_path / "infy.parquet"
    replay_chain(data, "INFY", out, IST, at_ns=at, expiry="all", fmt="parquet")
    t = pq.read_table(out).to_pylist()
    assert len(t) == result.legs
    assert {str(r["spot"]) for r in t} == {"1573.70000000"}
    for r in t:
        m = DEFAULT_SURFACE.vol(math.log(r["strike"] / r["forward"]), r["years"])
        assert r["iv_bid"] is None or r["iv_bid"] <= m + 1e-3

"""`shriven replay chain` on a store the daemon recorded from the Kite simulator: the implied
volatilities it recovers are the simulator's surface at every strike, and the table, the other
formats and the plot are produced."""

from __future__ import annotations

import io
import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shriven.errors import ShrivenError
from shriven.replay import replay_chain
from shriven.replay.chain import CHAIN_COLUMNS
from shriven.sim.surface import DEFAULT_SURFACE
from shriven.wal.check import wal_stats

IST = ZoneInfo("Asia/Kolkata")


def _last_ns(store: Path) -> int:
    last = wal_stats("ticks", store / "ticks").last_ns
    assert last is not None
    return last


def _rows(store: Path, **kw: object) -> list[dict[str, object]]:
    out = io.StringIO()
    replay_chain(store, "NIFTY 50", out, IST, fmt="jsonl", rate=DEFAULT_SURFACE.rate, **kw)  # type: ignore[arg-type]
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_recovered_ivs_are_the_simulators_surface_at_every_strike(sim_chain_store: Path) -> None:
    rows = _rows(sim_chain_store, at_ns=_last_ns(sim_chain_store), expiry="all")
    quoted = [r for r in rows if r["iv_mid"] is not None]
    assert len(quoted) >= 2 * 13 and len(quoted) == len(rows)  # +-6 strikes and the ATM, CE+PE
    for r in quoted:
        forward, years = float(r["forward"]), float(r["years"])  # type: ignore[arg-type]
        truth = DEFAULT_SURFACE.vol(math.log(float(r["strike"]) / forward), years)  # type: ignore[arg-type]
        # the quote brackets the surface price a tick apart; the spot moves between the
        # future's tick and the option's, so allow 0.05 vol points either side
        lo = r["iv_bid"] if r["iv_bid"] is not None else 0.0
        assert lo - 5e-4 <= truth <= r["iv_ask"] + 5e-4, r  # type: ignore[operator]
        assert abs(r["iv_mid"] - truth) < 1e-3, r  # type: ignore[operator]
        assert r["vega"] > 0 and r["gamma"] > 0  # type: ignore[operator]
        assert (r["delta"] > 0) == (r["type"] == "CE")  # type: ignore[operator]
        assert r["theta"] < 0  # type: ignore[operator]
    atm = [r for r in rows if r["atm"]]
    assert {r["type"] for r in atm} == {"CE", "PE"} and len({r["strike"] for r in atm}) == 1
    strikes = sorted({float(r["strike"]) for r in rows})  # type: ignore[arg-type]
    nearest = min(strikes, key=lambda k: abs(k - float(atm[0]["forward"])))  # type: ignore[arg-type]
    assert atm[0]["strike"] == nearest
    assert all("." in str(r["bid"]) for r in quoted if r["bid"])  # rupees as decimal text


def test_table_csv_parquet_and_plot_are_produced(sim_chain_store: Path, tmp_path: Path) -> None:
    at = _last_ns(sim_chain_store)
    table = io.StringIO()
    png = tmp_path / "smile.png"
    result = replay_chain(sim_chain_store, "NIFTY 50", table, IST, at_ns=at, plot=png)
    text = table.getvalue()
    assert text.startswith("NIFTY at ") and "spot " in text
    assert "forward " in text and "future NIFTY" in text and "\n* " in text  # ATM marked
    assert result.legs == len(text.splitlines()) - 5  # header, expiry, columns, calendar, key

    csv_out = tmp_path / "chain.csv"
    replay_chain(sim_chain_store, "NIFTY 50", csv_out, IST, at_ns=at, fmt="csv")
    lines = csv_out.read_text().splitlines()
    assert lines[0].split(",") == list(CHAIN_COLUMNS) and len(lines) == result.legs + 1

    parquet = tmp_path / "chain.parquet"
    replay_chain(sim_chain_store, "NIFTY 50", parquet, IST, at_ns=at, fmt="parquet")
    t = pq.read_table(parquet)
    assert t.num_rows == result.legs
    assert t.schema.field("bid").type == pa.decimal128(38, 8)
    assert t.schema.field("iv_mid").type == pa.float64()

    # the PNG: its header says the size the plot was drawn at, and the panels are labelled
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    assert result.plot is not None and (width, height) == (result.plot.width, result.plot.height)
    assert (width, height) == (1000, 400)  # one recorded expiry: one smile panel
    assert result.plot.title.startswith("NIFTY at ") and "spot " in result.plot.title
    title, xlabel, ylabel = result.plot.panels[0]
    assert title.startswith("smile, expiry ") and (xlabel, ylabel) == (
        "strike",
        "implied volatility (%)",
    )


def test_a_series_has_one_row_per_instant_expiry_strike_and_type(
    sim_chain_store: Path, tmp_path: Path
) -> None:
    end = _last_ns(sim_chain_store)
    start = end - 2_000_000_000
    out = tmp_path / "series.parquet"
    result = replay_chain(
        sim_chain_store, "NIFTY 50", out, IST, start_ns=start, end_ns=end, every_ns=500_000_000,
        fmt="parquet",
    )  # fmt: skip
    t = pq.read_table(out).to_pylist()
    assert result.snapshots == 4
    times = sorted({r["time"] for r in t})
    assert len(times) == 4
    keys = {(r["time"], r["expiry"], r["strike"], r["type"]) for r in t}
    assert len(keys) == len(t) == result.legs


@pytest.mark.parametrize(
    ("underlying", "kw", "said"),
    [
        ("NIFTY BANK", {}, "no options recorded for BANKNIFTY"),
        ("NIFTY 50", {"at_ns": 1_577_852_400 * 10**9}, "is outside the store"),
        ("NIFTY 50", {"expiry": "2031-01-28"}, "--expiry 2031-01-28: no option of that expiry"),
        ("NIFTY 50", {"expiry": "soon"}, "bad --expiry 'soon'"),
        ("BTCUSDT", {}, "has no options in the instruments table"),
    ],
)
def test_bad_requests_raise_one_line_and_write_nothing(
    sim_chain_store: Path, tmp_path: Path, underlying: str, kw: dict[str, object], said: str
) -> None:
    kw.setdefault("at_ns", _last_ns(sim_chain_store))
    out = tmp_path / "never.csv"
    with pytest.raises(ShrivenError) as info:
        replay_chain(
            sim_chain_store, underlying, out, IST, fmt="csv", cache_dir=_sim_cache(sim_chain_store),
            **kw,  # type: ignore[arg-type]
        )  # fmt: skip
    message = str(info.value)
    assert said in message and "\n" not in message
    assert not out.exists()


def test_the_command_prints_one_line_for_a_bad_request(sim_chain_store: Path) -> None:
    env = dict(
        os.environ,
        SHRIVEN_CONFIG_FILE=os.devnull,
        SHRIVEN_CACHE_DIR=str(_sim_cache(sim_chain_store)),
    )
    cmd = [sys.executable, "-m", "shriven", "replay", "chain", "NIFTY 50", "--at", "2020-01-01"]
    cmd += ["--data-dir", str(sim_chain_store)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "is outside the store" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def _sim_cache(store: Path) -> Path:
    """The simulator's whole instruments table, as `shriven run --sim` cached it."""
    return store.parent / "cache" / "sim"

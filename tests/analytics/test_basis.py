"""Binance spot against perpetual basis in `replay arb`: a store recorded from the spot and USD-M
simulators (real wire messages through the real parsers) with one planted basis reports it at
its instant with its size and the funding then recorded; a consistent pair reports none; the
real USD-M recordings have no spot recorded beside them and say so, one line a perpetual."""

from __future__ import annotations

import io
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from tests.replay.conftest import isolated_cli_settings  # noqa: F401 (a fixture)
from tests.replay.synth import record_store
from typer.testing import CliRunner

from shriven.analytics import Quote
from shriven.analytics.basis import BUY_PERP, SELL_PERP, basis_check
from shriven.cli import app
from shriven.errors import NotRecordedError
from shriven.events import BinanceMarkPrice, Record, Status, StatusKind
from shriven.feeds.binance.parse import parse_depth_snapshot
from shriven.feeds.binance.streams import parse_futures_snapshot, parse_venue_message
from shriven.replay.arb import ARB_COLUMNS, replay_arb
from shriven.sim.binance import BinanceSimulator

UTC = ZoneInfo("UTC")
NS = 1_000_000_000
STEP_NS = 100_000_000
T0 = 1_795_146_300 * NS
SYMBOL = "BTCUSDT"
SHIFT = 18_000  # ticks of 0.01: 180 USDT on a 60,000 book, 30 bps
USDM = "binance-usdm"


def sim_records(steps: int, plant: tuple[int, int] | None = None) -> list[Record]:
    """Spot (its default streams: depth and trades) and a USD-M perpetual of the same symbol
    (depth, book ticker, mark price...) stepped together every 100 ms; ``plant``: the steps at
    which the perpetual's whole book is moved up by SHIFT ticks and back."""
    spot = BinanceSimulator((SYMBOL,), seed=5, venue="binance")
    perp = BinanceSimulator((SYMBOL,), seed=5, venue=USDM)
    out: list[Record] = [Status(T0, 0, "system", StatusKind.STARTED, "", '{"pid":1}')]
    for i in range(steps):
        t = T0 + (i + 1) * STEP_NS
        if plant is not None and i in plant:
            perp.shift_book(SYMBOL, SHIFT if i == plant[0] else -SHIFT)
        for sim, venue in ((spot, "binance"), (perp, USDM)):
            for stream, kind, text in sim.step():
                if venue == "binance" and kind in ("bookTicker", "aggTrade"):
                    continue  # not among spot's default streams
                rec = parse_venue_message(f'{{"stream":"{stream}","data":{text}}}', t, venue)
                if rec is not None:
                    out.append(rec)  # type: ignore[arg-type]
            if i == 0:  # the REST snapshot, fetched once the stream runs (as the feed does)
                body = sim.snapshot_body(SYMBOL)
                snap = (
                    parse_depth_snapshot(body, SYMBOL, t)
                    if venue == "binance"
                    else parse_futures_snapshot(body, venue, SYMBOL, t)
                )
                out.append(snap)
    seq: dict[str, int] = {}
    for r in out:
        stream = "system" if type(r) is Status else getattr(r, "venue", "binance")
        seq[stream] = r.seq = seq.get(stream, 0) + 1
    return out


def arb(store: Path, **kw: object) -> tuple[list[dict[str, object]], list[str]]:
    out, notes = io.StringIO(), []
    replay_arb(store, out, UTC, fmt="jsonl", on_note=notes.append, **kw)  # type: ignore[arg-type]
    return [json.loads(line) for line in out.getvalue().splitlines()], notes


def test_basis_after_spreads_takes_the_better_round_trip() -> None:
    spot = Quote(99.9, 100.1)
    rich = basis_check(spot, Quote(100.5, 100.7))
    assert rich.direction == SELL_PERP
    assert rich.edge_bps == pytest.approx((100.5 - 100.1) / 100.0 * 1e4)  # 40 bps
    assert rich.mid_bps == pytest.approx((100.6 / 100.0 - 1) * 1e4)
    cheap = basis_check(spot, Quote(99.3, 99.5))
    assert cheap.direction == BUY_PERP
    assert cheap.edge_bps == pytest.approx((99.9 - 99.5) / 100.0 * 1e4)
    assert basis_check(spot, Quote(100.0, 100.2)).edge_bps < 0
    assert basis_check(spot, Quote(None, 100.2)).edge_bps is None


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Record]]:
    store = tmp_path_factory.mktemp("basis") / "market"
    records = sim_records(400, plant=(150, 250))
    record_store(store, records)
    return store, records


def test_a_planted_basis_is_found_at_its_instant_with_its_size_and_funding(
    planted: tuple[Path, list[Record]],
) -> None:
    store, records = planted
    rows, notes = arb(store, basis_threshold=5.0)
    assert [(r["check"], r["event"], r["contract"]) for r in rows] == [
        ("basis", "opened", f"{USDM}:{SYMBOL}"),
        ("basis", "closed", f"{USDM}:{SYMBOL}"),
    ]
    opened, closed = rows
    assert opened["time"] == "2026-11-20T03:45:15.100000000Z"  # step 150
    assert closed["time"] == "2026-11-20T03:45:25.100000000Z"  # step 250
    assert closed["since"] == opened["time"]
    assert (opened["underlying"], opened["direction"], opened["unit"]) == (SYMBOL, SELL_PERP, "bps")
    # 180 USDT on about 60,000 less both half spreads and the walk the two books took apart
    assert 29.9 <= opened["edge"] <= 30.05, opened  # type: ignore[operator]
    assert 29.9 <= opened["basis_bps"] <= 30.05  # type: ignore[operator]
    assert opened["annualised"] == pytest.approx(opened["basis_bps"] / 1e4 * 3 * 365, rel=1e-3)  # type: ignore[operator]
    marks = [r for r in records if type(r) is BinanceMarkPrice and r.recv_ns <= T0 + 151 * STEP_NS]
    rate = float(marks[-1].funding_rate)
    assert opened["funding_rate"] == pytest.approx(rate)
    assert opened["funding_annualised"] == pytest.approx(rate * 3 * 365, abs=1e-8)
    # the simulator's own clock: its next 8-hour boundary
    assert marks[-1].next_funding_time == 1_700_006_400_000
    assert opened["next_funding"] == "2023-11-15T00:00:00.000000000Z"
    assert any("funding" in n and "next at" in n for n in notes), notes
    assert "1 basis deviations over 5 bps after spreads opened, 1 closed, 0 still open" in notes[-1]


def test_a_consistent_pair_has_no_deviation_and_missing_funding_is_one_line(
    tmp_path: Path,
) -> None:
    records = [r for r in sim_records(300) if type(r) is not BinanceMarkPrice]
    record_store(tmp_path / "market", records)
    rows, notes = arb(tmp_path / "market", basis_threshold=1.0)
    assert rows == []
    assert notes == [
        f"{USDM}:{SYMBOL}: no funding rate recorded (no markPrice records in the range): basis "
        f"against binance:{SYMBOL} without funding; add markPrice to "
        "SHRIVEN_BINANCE_USDM_STREAMS",
        "0 basis deviations over 1 bps after spreads opened, 0 closed, 0 still open at the end "
        "of the range",
    ]
    out = io.StringIO()
    replay_arb(tmp_path / "market", out, UTC, fmt="csv", basis_threshold=1.0)
    assert out.getvalue() == ",".join(ARB_COLUMNS) + "\n"


def test_the_real_usdm_recordings_have_no_spot_beside_them(
    tmp_path: Path, binance_fixtures: Path
) -> None:
    """The fixtures' USD-M recording (2021-07-22) and spot recordings (2021-10-12, 2024-08-08)
    share no symbol and no hour: each perpetual says its spot is missing, and nothing else."""
    folder = binance_fixtures / "cryptofeed_usdm_futures"
    records: list[Record] = [Status(T0, 1, "system", StatusKind.STARTED, "", "{}")]
    for i, line in enumerate((folder / "combined_stream_all.jsonl").read_text().splitlines()):
        if "@kline" not in line[:40]:
            rec = parse_venue_message(line, T0 + (i + 1) * 1_000_000, USDM, seq=i + 1)
            records.append(rec)  # type: ignore[arg-type]
    spot = binance_fixtures / "hftbacktest_spot_btcusdt_20240808" / "depth_diff_BTCUSDT.jsonl"
    at = T0 + 10 * NS
    for i, line in enumerate(spot.read_text().splitlines()[:200]):
        records.append(parse_venue_message(line, at + i * 1_000_000, "binance", seq=i + 1))  # type: ignore[arg-type]
    record_store(tmp_path / "market", records)
    rows, notes = arb(tmp_path / "market")
    assert rows == []
    assert notes == [
        f"{USDM}:{s}: a perpetual with no spot recorded (binance:{s} has no records in the "
        f"range): no basis; record {s} too (SHRIVEN_BINANCE_SYMBOLS)"
        for s in ("AKROUSDT", "CTKUSDT", "KEEPUSDT", "SUSHIUSDT")
    ]


def test_a_store_with_neither_options_nor_a_perpetual_is_one_line(
    tmp_path: Path, binance_fixtures: Path
) -> None:
    spot = binance_fixtures / "hftbacktest_spot_btcusdt_20240808" / "depth_diff_BTCUSDT.jsonl"
    records: list[Record] = [Status(T0, 1, "system", StatusKind.STARTED, "", "{}")]
    for i, line in enumerate(spot.read_text().splitlines()[:50]):
        records.append(parse_venue_message(line, T0 + i * 1_000_000, "binance", seq=i + 1))  # type: ignore[arg-type]
    record_store(tmp_path / "market", records)
    with pytest.raises(
        NotRecordedError, match=r"no underlying with options .* no Binance perpetual"
    ):
        arb(tmp_path / "market")


@pytest.mark.usefixtures("isolated_cli_settings")
def test_the_command_lists_the_planted_basis_and_refuses_a_store_with_nothing_to_check(
    planted: tuple[Path, list[Record]], tmp_path: Path
) -> None:
    store, _records = planted
    runner = CliRunner()
    done = runner.invoke(app, ["replay", "arb", "--data-dir", str(store), "--format", "csv"])
    assert done.exit_code == 0, done.output
    header, *rows = done.stdout.splitlines()
    assert header == ",".join(ARB_COLUMNS)
    assert [r.split(",")[4] for r in rows] == ["opened", "closed"]  # over the default 10 bps
    assert "1 basis deviations over 10 bps" in done.stderr
    done = runner.invoke(
        app, ["replay", "arb", "--data-dir", str(store), "--basis-threshold", "31"]
    )
    assert done.exit_code == 0 and done.stdout.count("\n") == 1  # the header alone
    empty = tmp_path / "empty"
    record_store(empty, [Status(T0, 1, "system", StatusKind.STARTED, "", "{}")])
    done = runner.invoke(app, ["replay", "arb", "--data-dir", str(empty)])
    # the entry point prints the error's one line and exits with its code
    assert isinstance(done.exception, NotRecordedError) and done.exception.exit_code == 1
    assert "\n" not in str(done.exception) and "no Binance perpetual" in str(done.exception)

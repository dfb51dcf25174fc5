"""`shriven replay`, `shriven replay book` and `shriven wal verify-books` as users run them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shriven.cli import app
from shriven.errors import NotRecordedError, ReplayError
from shriven.events import Record, Status
from shriven.replay.ordering import paced

from .synth import (
    BANK_FUT,
    NIFTY_CE,
    NIFTY_FUT,
    NS,
    T0,
    Session,
    generate,
    record_store,
    store_without,
)

runner = CliRunner()
START = "2026-11-20T09:16:00"  # market zone: T0 + 60 s
END = "2026-11-20T09:17:00"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Record], Session]:
    data_dir = tmp_path_factory.mktemp("cli_store")
    records = generate(seed=21, seconds=200, rate_hz=25, gap_at_s=90)
    return data_dir, records, record_store(data_dir, records)


pytestmark = pytest.mark.usefixtures("isolated_cli_settings")


def _replay(data_dir: Path, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["replay", "--data-dir", str(data_dir), *args])


def test_replay_jsonl_range_in_market_time(store: tuple[Path, list[Record], Session]) -> None:
    data_dir, records, _ = store
    result = _replay(data_dir, "--start", START, "--end", END, "--format", "jsonl")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    expected = [r for r in records if T0 + 60 * NS <= r.recv_ns < T0 + 120 * NS]
    assert len(rows) == len(expected) > 100
    assert rows[0]["time"].startswith("2026-11-20T09:16:0")
    assert "times in Asia/Kolkata (UTC+05:30)" in result.stderr


def test_replay_to_a_file_twice_gives_identical_bytes(
    store: tuple[Path, list[Record], Session], tmp_path: Path
) -> None:
    data_dir, _, _ = store
    outs = []
    for i in range(2):
        out = tmp_path / f"run{i}.csv"
        result = _replay(data_dir, "--start", START, "--format", "csv", "--out", str(out))
        assert result.exit_code == 0, result.output
        assert "replay: " in result.stderr and "records" in result.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] and outs[0].count(b"\n") > 100


def test_symbol_kind_and_table(store: tuple[Path, list[Record], Session]) -> None:
    data_dir, records, _ = store
    result = _replay(data_dir, "--symbol", str(NIFTY_FUT), "--kind", "ticks", "--end", END)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("# times in Asia/Kolkata")
    want = [
        r
        for r in records
        if getattr(r, "instrument_token", None) == NIFTY_FUT and r.recv_ns < T0 + 120 * NS
    ]
    assert len(lines) - 2 == len(want)
    assert all(f" {NIFTY_FUT} " in line for line in lines[2:])


def test_spot_name_without_instruments_cache_says_what_to_do(
    store: tuple[Path, list[Record], Session],
) -> None:
    data_dir, _, _ = store
    result = _replay(data_dir, "--symbol", "NIFTY 50")
    assert isinstance(result.exception, ReplayError)
    assert "cannot select 'NIFTY 50'" in str(result.exception)


def test_bad_arguments_are_one_line_errors(store: tuple[Path, list[Record], Session]) -> None:
    data_dir, _, _ = store
    for args, message in [
        (["--format", "parquet"], "give --out"),
        (["--format", "xml"], "unknown --format"),
        (["--speed", "fast"], "bad --speed"),
        (["--start", END, "--end", START], "range is empty"),
        (["--start", "noon"], "cannot read the time"),
    ]:
        result = _replay(data_dir, *args)
        assert isinstance(result.exception, ReplayError), args
        assert message in str(result.exception)
    result = runner.invoke(app, ["replay", "--data-dir", str(data_dir / "nope")])
    assert "not a shriven store" in str(result.exception)


def test_speed_paces_the_output(store: tuple[Path, list[Record], Session]) -> None:
    data_dir, _, _ = store
    # two seconds of records at 20x: about 0.1 s of pacing, and every record still comes out
    end = "2026-11-20T09:16:02"
    fast = _replay(data_dir, "--start", START, "--end", end, "--format", "jsonl")
    paced = _replay(data_dir, "--start", START, "--end", end, "--format", "jsonl", "--speed", "20")
    assert paced.exit_code == 0, paced.output
    assert paced.stdout == fast.stdout


def test_paced_emits_each_record_at_its_recorded_offset_divided_by_the_speed() -> None:
    # The CLI test above can only bound the time loosely; here the clock is exact.
    now = [100.0]
    emitted: list[tuple[int, float]] = []

    def sleep(s: float) -> None:
        assert s > 0
        now[0] += s

    recs = [Status(t * 10**9, i, "system", "started", "", "{}") for i, t in enumerate([0, 1, 1, 4])]
    for r in paced(recs, 2.0, clock=lambda: now[0], sleep=sleep):
        emitted.append((r.seq, now[0]))
        now[0] += 0.1  # the consumer's own time counts towards the wait
    assert [seq for seq, _ in emitted] == [0, 1, 2, 3]
    assert [t for _, t in emitted] == pytest.approx([100.0, 100.5, 100.6, 102.0])


def test_speed_takes_the_recorded_span_divided_by_the_factor(
    store: tuple[Path, list[Record], Session],
) -> None:
    data_dir, _, _ = store
    end = "2026-11-20T09:16:03"
    args = ["--start", START, "--end", end, "--format", "jsonl", "--kind", "ticks,trades,depth"]
    t0 = time.monotonic()
    fast = _replay(data_dir, *args)
    fast_s = time.monotonic() - t0
    rows = [json.loads(line) for line in fast.stdout.splitlines()]
    times = sorted(r["recv_ns"] for r in rows)
    span_s = (times[-1] - times[0]) / 1e9
    assert span_s > 2.0, span_s  # the range holds about 3 s of records
    t0 = time.monotonic()
    paced = _replay(data_dir, *args, "--speed", "4")
    paced_s = time.monotonic() - t0
    assert paced.stdout == fast.stdout
    # Generous bounds (a loaded machine only makes it slower): at least 80% of span/4, and
    # clearly slower than the unpaced run; at most span/4 plus a wide margin.
    assert paced_s >= 0.8 * span_s / 4, (paced_s, span_s)
    assert paced_s >= fast_s + 0.3 * span_s / 4, (paced_s, fast_s)
    assert paced_s <= span_s / 4 + fast_s + 10.0, (paced_s, span_s)


def test_replay_book_prints_levels_and_features(store: tuple[Path, list[Record], Session]) -> None:
    data_dir, _, _ = store
    args = ["--symbol", "BTCUSDT", "--at", "2026-11-20T03:47:30Z", "--depth", "5"]
    result = runner.invoke(app, ["replay", "book", "--data-dir", str(data_dir), *args])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("binance:BTCUSDT at 2026-11-20T09:17:30.000000000+05:30; times in")
    assert "from the snapshot at 2026-11-20T09:17:00" in out
    assert "in sync" in out
    assert "spread " in out
    assert "microprice" in out and "imbalance" in out
    assert len([line for line in out.splitlines() if " | " in line]) == 6  # header + 5 levels


def test_replay_book_of_nothing_recorded_is_a_one_line_error(
    store: tuple[Path, list[Record], Session],
) -> None:
    data_dir, _, _ = store
    for symbol, at in (("DOGEUSDT", "2026-11-20T03:47:30Z"), ("BTCUSDT", "2026-11-19T03:47:30Z")):
        args = ["--symbol", symbol, "--at", at]
        result = runner.invoke(app, ["replay", "book", "--data-dir", str(data_dir), *args])
        assert isinstance(result.exception, ReplayError)
        assert result.exception.exit_code == 1  # as the README says: the data lacks it
        assert f"no book of binance:{symbol} at or before" in str(result.exception)


def test_replay_book_of_an_unrecorded_symbol_names_the_closest_recorded_books(
    store: tuple[Path, list[Record], Session],
) -> None:
    data_dir, _, _ = store
    at = ("--at", "2026-11-20T03:47:30Z")
    typo = runner.invoke(
        app, ["replay", "book", "--data-dir", str(data_dir), "--symbol", "ETHUSD", *at]
    )
    assert isinstance(typo.exception, NotRecordedError), typo.output
    assert "recorded instruments closest to it: ETHUSDT, BTCUSDT" in str(typo.exception)
    early = ("--at", "2026-11-19T03:47:30Z")
    args = ["replay", "book", "--data-dir", str(data_dir), "--symbol", "BTCUSDT", *early]
    before = runner.invoke(app, args)
    assert isinstance(before.exception, NotRecordedError), before.output
    assert "nothing was recorded for it by then; its records start later;" in str(before.exception)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_a_one_line_error(store: tuple[Path, list[Record], Session]) -> None:
    data_dir, _, _ = store
    for fmt in ("jsonl", "parquet"):
        result = _replay(data_dir, "--format", fmt, "--out", "/dev/full", "--no-progress")
        assert isinstance(result.exception, ReplayError), result.output
        assert "cannot write /dev/full: No space left on device" in str(result.exception)


def test_an_export_that_fails_midway_leaves_no_file_that_looks_whole(tmp_path: Path) -> None:
    from shriven.files import atomic_output

    out = tmp_path / "day.jsonl"
    with pytest.raises(KeyboardInterrupt), atomic_output(out) as f:
        f.write(b'{"half": ')
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with atomic_output(out) as f:
        f.write(b"{}\n")
    assert out.read_text() == "{}\n" and list(tmp_path.iterdir()) == [out]


def test_out_inside_the_store_is_refused_and_the_store_stays_intact(
    store: tuple[Path, list[Record], Session], tmp_path: Path
) -> None:
    data_dir, _, _ = store
    segment = sorted((data_dir / "ticks").glob("segment_*.wal"))[0]
    before = segment.read_bytes()
    link = tmp_path / "link"
    link.symlink_to(data_dir / "ticks")  # the same store through a symlink
    for out in (segment, data_dir / "new.csv", link / "x.jsonl", data_dir):
        result = _replay(data_dir, "--format", "csv", "--out", str(out), "--force")
        assert isinstance(result.exception, ReplayError), (out, result.output)
        assert result.exception.exit_code == 2
        assert "inside the store being read" in str(result.exception)
    assert segment.read_bytes() == before
    assert not (data_dir / "new.csv").exists() and not (data_dir / "ticks" / "x.jsonl").exists()
    check = runner.invoke(app, ["wal", "check", str(data_dir)])
    assert check.exit_code == 0 and "result: ok" in check.stdout


def test_out_does_not_replace_an_existing_file_without_force(
    store: tuple[Path, list[Record], Session], tmp_path: Path
) -> None:
    data_dir, _, _ = store
    out = tmp_path / "mine.jsonl"
    out.write_text("precious\n")
    args = ("--end", START, "--format", "jsonl", "--out", str(out), "--no-progress")
    refused = _replay(data_dir, *args)
    assert isinstance(refused.exception, ReplayError)
    assert "exists: pass --force" in str(refused.exception)
    assert out.read_text() == "precious\n"
    replaced = _replay(data_dir, *args, "--force")
    assert replaced.exit_code == 0, replaced.output
    assert out.read_text().count("\n") > 100 and out.read_text().startswith('{"time"')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.jsonl"]  # no temporary left


def test_an_empty_range_says_where_the_records_are(
    store: tuple[Path, list[Record], Session],
) -> None:
    data_dir, _, _ = store
    # The store is 2026-11-20 from 09:15 IST; 03:45 given without Z is read as IST and misses.
    result = _replay(data_dir, "--start", "2026-11-20T03:45:00", "--end", "2026-11-20T03:50:00")
    assert result.exit_code == 0
    assert "replay: 0 records in" in result.stderr
    assert f"{data_dir} holds records from 2026-11-20T09:15:00" in result.stderr
    assert "(times without an offset are in Asia/Kolkata)" in result.stderr


def test_verify_books_exit_codes(store: tuple[Path, list[Record], Session], tmp_path: Path) -> None:
    data_dir, records, _ = store
    ok = runner.invoke(app, ["wal", "verify-books", str(data_dir)])
    assert ok.exit_code == 0, ok.output
    assert " 0 differences" in ok.stdout
    index = next(
        i
        for i, r in enumerate(records)
        if getattr(r, "symbol", None) == "ETHUSDT"
        and type(r).__name__ == "BinanceDepth"
        and r.recv_ns > T0 + 150 * NS
    )
    bad = runner.invoke(app, ["wal", "verify-books", str(store_without(tmp_path, records, index))])
    assert bad.exit_code == 1
    assert "DIFFERENT binance:ETHUSDT snapshot at 2026-11-20T09:18:00" in bad.stdout


def test_real_process_replays_and_reports_errors_on_one_line(
    store: tuple[Path, list[Record], Session],
) -> None:
    data_dir, _, _ = store
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "shriven", "replay", "--data-dir", str(data_dir)]
    done = subprocess.run(
        [*cmd, "--end", "2026-11-20T09:15:01", "--format", "jsonl"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") > 10
    bad = subprocess.run(
        [*cmd, "--kind", "quotes"], env=env, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "shriven: error: unknown kind 'quotes': use one or more of ticks, trades, depth, "
        "status, snapshots, tickers, marks, liquidations, open_interest (repeat --kind or "
        "separate with commas)"
    ]


def test_spot_name_with_the_instruments_cache_selects_its_derivatives(
    store: tuple[Path, list[Record], Session], tmp_path: Path
) -> None:
    from datetime import UTC, date, datetime

    from shriven.feeds.kite.instruments import Instrument, save_cache

    def row(token: int, symbol: str, name: str, kind: str, segment: str) -> Instrument:
        expiry = date(2026, 11, 26) if segment != "INDICES" else None
        exchange = "NSE" if segment == "INDICES" else "NFO"
        return Instrument(token, token >> 8, symbol, name, 0.0, expiry, 0.0, 0.05, 75, kind,
                          segment, exchange)  # fmt: skip

    save_cache(
        tmp_path / "cache",
        [
            row(256265, "NIFTY 50", "NIFTY 50", "EQ", "INDICES"),
            row(NIFTY_FUT, "NIFTY26NOVFUT", "NIFTY", "FUT", "NFO-FUT"),
            row(NIFTY_CE, "NIFTY26NOV24500CE", "NIFTY", "CE", "NFO-OPT"),
            row(BANK_FUT, "BANKNIFTY26NOVFUT", "BANKNIFTY", "FUT", "NFO-FUT"),
        ],
        "test",
        datetime.now(UTC),
    )
    data_dir, records, _ = store
    result = _replay(data_dir, "--symbol", "NIFTY 50", "--kind", "ticks", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    tokens = {json.loads(line)["instrument_token"] for line in result.stdout.splitlines()}
    assert tokens == {256265, NIFTY_FUT, NIFTY_CE}
    assert "spot NIFTY 50 (token 256265) with 1 futures and 1 options of NIFTY" in result.stderr
    one = _replay(data_dir, "--symbol", "NIFTY26NOVFUT", "--kind", "ticks", "--format", "jsonl")
    assert {json.loads(line)["instrument_token"] for line in one.stdout.splitlines()} == {NIFTY_FUT}
    assert len(one.stdout.splitlines()) == sum(
        1 for r in records if getattr(r, "instrument_token", None) == NIFTY_FUT
    )


@pytest.mark.parametrize("typo", ["BTCUSD", "FOO", "999999999"])
def test_a_symbol_the_store_never_recorded_is_exit_1_naming_the_closest(
    store: tuple[Path, list[Record], Session], typo: str
) -> None:
    data_dir, _, _ = store
    result = _replay(data_dir, "--symbol", typo)
    assert isinstance(result.exception, NotRecordedError), result.output
    assert result.exception.exit_code == 1
    message = str(result.exception)
    assert message.startswith(f"--symbol {typo}: no record of it in {data_dir}; ")
    if typo == "BTCUSD":
        assert "recorded instruments closest to it: BTCUSDT, ETHUSDT" in message
    else:
        assert "instruments recorded there is close (e.g. " in message
    assert result.stdout == ""  # not even the table header


def test_an_unrecorded_symbol_prints_nothing_but_the_error(
    store: tuple[Path, list[Record], Session],
) -> None:
    data_dir, _, _ = store
    result = _replay(data_dir, "--symbol", "BTCUSD")
    assert isinstance(result.exception, NotRecordedError), result.output
    # not even what the symbol resolved to: the one-line error is the whole answer
    assert result.stdout == "" and result.stderr == ""
    recorded = _replay(data_dir, "--symbol", "BTCUSDT", "--end", START)
    assert recorded.exit_code == 0, recorded.output
    assert "replay: --symbol BTCUSDT: Binance symbol BTCUSDT" in recorded.stderr


def test_one_unrecorded_symbol_among_several_writes_no_file(
    store: tuple[Path, list[Record], Session], tmp_path: Path
) -> None:
    data_dir, _, _ = store
    out = tmp_path / "both.csv"
    args = ("--symbol", "BTCUSDT", "--symbol", "ETHUSDX", "--format", "csv", "--out", str(out))
    result = _replay(data_dir, *args)
    assert isinstance(result.exception, NotRecordedError)
    assert "--symbol ETHUSDX: no record of it" in str(result.exception)
    assert "closest to it: ETHUSDT" in str(result.exception)
    assert list(tmp_path.iterdir()) == []
    in_range = _replay(data_dir, "--symbol", "BTCUSDT", "--end", START)
    assert in_range.exit_code == 0, in_range.output


def test_a_real_process_says_an_unrecorded_symbol_on_one_line_with_exit_1(
    store: tuple[Path, list[Record], Session],
) -> None:
    data_dir, _, _ = store
    cmd = [sys.executable, "-m", "shriven", "replay", "--data-dir", str(data_dir)]
    done = subprocess.run([*cmd, "--symbol", "BTCUSD"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    errors = [line for line in done.stderr.splitlines() if line.startswith("shriven: error:")]
    assert len(errors) == 1 and "BTCUSDT" in errors[0] and "Traceback" not in done.stderr


def test_tables_print_book_values_as_the_venue_writes_them(
    store: tuple[Path, list[Record], Session],
) -> None:
    data_dir, _, _ = store
    table = _replay(data_dir, "--kind", "snapshots", "--end", END)
    assert table.exit_code == 0, table.output
    rows = [line for line in table.stdout.splitlines() if "book_snapshot" in line]
    kite = [r for r in rows if f" {NIFTY_FUT} " in r]
    binance = [r for r in rows if " BTCUSDT " in r]
    assert kite and binance
    # Kite: rupees with the wire's 2 decimals, whole quantities; Binance: its 8 decimals
    assert all(re.search(r"bid=\d+\.\d\dx\d+ ask=\d+\.\d\dx\d+ ", r) for r in kite), kite[0]
    assert all(re.search(r"bid=\d+\.\d{8}x\d+\.\d{8} ask=", r) for r in binance), binance[0]
    for symbol in ("BTCUSDT", str(NIFTY_FUT)):
        at = ("--at", "2026-11-20T03:47:30Z")
        book = runner.invoke(
            app, ["replay", "book", "--data-dir", str(data_dir), "--symbol", symbol, *at]
        )
        assert book.exit_code == 0, book.output
        levels = [line for line in book.stdout.splitlines() if " | " in line][1:]
        assert levels and not any(re.search(r"\d\.0(?!\d)", line) for line in levels), levels
        features = next(x for x in book.stdout.splitlines() if x.startswith("spread "))
        pattern = r"spread -?[\d.]+  mid [\d.]+  microprice [\d.]+  imbalance .*"
        assert re.fullmatch(pattern, features)
        assert not re.search(r"\d\.\d{10}", features)  # no float noise

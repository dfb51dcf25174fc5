"""The instrument dump: strict parsing (checked against kiteconnect's own parser on the recorded
dumps), the verified cache, 08:00 IST freshness, and fetching from the simulator."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from kiteconnect import KiteConnect

from shriven.errors import InstrumentsError
from shriven.feeds.kite.instruments import (
    COLUMNS,
    Instrument,
    cache_paths,
    decode_cache,
    encode_cache,
    fetch_instruments,
    is_fresh,
    last_refresh_boundary,
    load_cache,
    load_instruments,
    needs_refresh,
    next_refresh_at,
    parse_instruments_csv,
    read_metadata,
    save_cache,
    to_csv,
)
from shriven.sim.background import simulator_thread
from shriven.sim.kite_instruments import generate_instruments
from shriven.sim.kite_rest import KiteSimulator

IST = ZoneInfo("Asia/Kolkata")
TODAY = date(2026, 11, 27)


@pytest.fixture(scope="module")
def generated() -> list[Instrument]:
    return generate_instruments(TODAY)


@pytest.mark.parametrize("name", ["instruments_all.csv", "instruments_nse.csv"])
def test_real_dumps_parse_like_kiteconnect(kite_fixtures: Path, name: str) -> None:
    raw = (kite_fixtures / name).read_bytes()
    ours = parse_instruments_csv(raw.decode())
    theirs = KiteConnect("fixture")._parse_instruments(raw)
    assert len(ours) == len(theirs) == raw.decode().strip().count("\n")
    for mine, ref in zip(ours, theirs, strict=True):
        expected = {**ref, "exchange_token": int(ref["exchange_token"])}
        expected["expiry"] = ref["expiry"] or None
        assert mine._asdict() == expected


def test_real_dump_first_row(kite_fixtures: Path) -> None:
    rows = parse_instruments_csv((kite_fixtures / "instruments_all.csv").read_text())
    assert rows[0] == Instrument(
        3813889, 14898, "CENTRALBK-BE", "CENTRAL BANK OF INDIA", 0.0, None, 0.0, 0.05, 1, "EQ",
        "NSE", "NSE",
    )  # fmt: skip


def test_generated_dump_round_trips_through_csv_and_cache(generated: list[Instrument]) -> None:
    text = to_csv(generated)
    assert text.splitlines()[0] == ",".join(COLUMNS)
    assert parse_instruments_csv(text) == generated
    assert decode_cache(encode_cache(generated)) == generated


def test_csv_header_matches_the_real_dump(kite_fixtures: Path, generated) -> None:
    real_header = (kite_fixtures / "instruments_all.csv").read_text().splitlines()[0]
    assert to_csv(generated[:1]).splitlines()[0] == real_header


def test_cut_short_dump_is_rejected_naming_the_line(generated: list[Instrument]) -> None:
    text = to_csv(generated)
    cut = text[: len(text) // 2]
    cut = cut[: cut.rindex(",") + 1]
    with pytest.raises(InstrumentsError, match=r"malformed at line \d+ .*instruments fetch"):
        parse_instruments_csv(cut)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        (",".join(COLUMNS) + "\n", "no rows"),
        ("instrument_token,tradingsymbol\n1,X\n", "no column"),
        (",".join(COLUMNS) + "\nabc,1,X,X,0,,0,0.05,1,EQ,NSE,NSE\n", "line 2"),
        (",".join(COLUMNS) + "\n1,1,X,X,0,2026-13-01,0,0.05,1,FUT,NFO-FUT,NFO\n", "line 2"),
        # Values int() and float() take but the venue's format does not have:
        (",".join(COLUMNS) + "\n1_000,1,X,X,0,,0,0.05,1,EQ,NSE,NSE\n", "line 2.*'1_000'"),
        (",".join(COLUMNS) + "\n\uff11,1,X,X,0,,0,0.05,1,EQ,NSE,NSE\n", "line 2"),
        (",".join(COLUMNS) + "\n4294967296,1,X,X,0,,0,0.05,1,EQ,NSE,NSE\n", "line 2"),
        (",".join(COLUMNS) + "\n1,1,X,X,0,,nan,0.05,1,CE,NFO-OPT,NFO\n", "line 2.*'nan'"),
        (",".join(COLUMNS) + "\n1,1,X,X,inf,,0,0.05,1,EQ,NSE,NSE\n", "line 2.*'inf'"),
        (",".join(COLUMNS) + "\n1,1,X,X,0,,-50,0.05,1,CE,NFO-OPT,NFO\n", "line 2.*'-50'"),
        (",".join(COLUMNS) + "\n1,1,X,X,0,,0,0.05,-1,EQ,NSE,NSE\n", "line 2.*'-1'"),
    ],
)
def test_bad_dumps_are_refused(text: str, match: str) -> None:
    with pytest.raises(InstrumentsError, match=match):
        parse_instruments_csv(text)


# ---------------------------------------------------------------- cache


def test_cache_round_trip_with_metadata(tmp_path: Path, generated) -> None:
    fetched = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    meta = save_cache(tmp_path, generated, "http://x/instruments", fetched)
    data_path, meta_path = cache_paths(tmp_path)
    doc = json.loads(meta_path.read_text())
    assert doc["rows"] == len(generated) and doc["source"] == "http://x/instruments"
    assert doc["checksum"].startswith("sha256:") and doc["fetched_at"] == fetched.isoformat()
    rows, loaded = load_cache(tmp_path)
    assert rows == generated and loaded == meta
    assert sorted(p.name for p in data_path.parent.iterdir()) == [
        "instruments.json",
        "metadata.json",
    ]  # no temporary files left behind


def test_cache_files_are_mode_0644_whatever_the_umask(tmp_path: Path, generated) -> None:
    """README: public market data other accounts (a replay user) may read; tokens stay 0600."""
    old = os.umask(0o077)
    try:
        save_cache(tmp_path, generated, "src", datetime.now(UTC))
    finally:
        os.umask(old)
    for path in cache_paths(tmp_path):
        assert oct(path.stat().st_mode & 0o777) == "0o644", path


def test_corrupt_cache_is_detected(tmp_path: Path, generated) -> None:
    save_cache(tmp_path, generated, "src", datetime.now(UTC))
    data_path, _ = cache_paths(tmp_path)
    raw = bytearray(data_path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data_path.write_bytes(bytes(raw))
    with pytest.raises(InstrumentsError, match="checksum"):
        load_cache(tmp_path)


def test_partial_cache_is_detected(tmp_path: Path, generated) -> None:
    save_cache(tmp_path, generated, "src", datetime.now(UTC))
    data_path, _ = cache_paths(tmp_path)
    data_path.write_bytes(data_path.read_bytes()[:1000])
    with pytest.raises(InstrumentsError, match="checksum"):
        load_cache(tmp_path)


def test_row_count_mismatch_is_detected(tmp_path: Path, generated) -> None:
    save_cache(tmp_path, generated, "src", datetime.now(UTC))
    _, meta_path = cache_paths(tmp_path)
    doc = json.loads(meta_path.read_text())
    doc["rows"] += 1
    meta_path.write_text(json.dumps(doc))
    with pytest.raises(InstrumentsError, match="rows"):
        load_cache(tmp_path)


def test_missing_metadata_means_no_cache(tmp_path: Path) -> None:
    assert read_metadata(tmp_path) is None
    assert needs_refresh(tmp_path)
    with pytest.raises(InstrumentsError, match="instruments fetch"):
        load_cache(tmp_path)


# ---------------------------------------------------------------- freshness


def ist(*args: int) -> datetime:
    return datetime(*args, tzinfo=IST)


def test_refresh_boundary_is_the_last_0800_ist() -> None:
    assert last_refresh_boundary(ist(2026, 11, 27, 8, 0)) == ist(2026, 11, 27, 8, 0)
    assert last_refresh_boundary(ist(2026, 11, 27, 7, 59)) == ist(2026, 11, 26, 8, 0)
    assert last_refresh_boundary(ist(2026, 11, 27, 23, 0)) == ist(2026, 11, 27, 8, 0)
    assert next_refresh_at(ist(2026, 11, 27, 7, 0)) == ist(2026, 11, 27, 8, 0)
    assert next_refresh_at(ist(2026, 11, 27, 8, 0)) == ist(2026, 11, 28, 8, 0)


def test_cache_fetched_after_0800_ist_is_fresh_until_the_next_0800(
    tmp_path: Path, generated
) -> None:
    meta = save_cache(tmp_path, generated, "src", ist(2026, 11, 27, 8, 30))
    assert is_fresh(meta, ist(2026, 11, 27, 15, 0))
    assert is_fresh(meta, ist(2026, 11, 28, 7, 59))
    assert not is_fresh(meta, ist(2026, 11, 28, 8, 0))
    assert not needs_refresh(tmp_path, ist(2026, 11, 28, 7, 0))
    assert needs_refresh(tmp_path, ist(2026, 11, 28, 8, 1))
    early = save_cache(tmp_path, generated, "src", ist(2026, 11, 27, 7, 45))
    assert not is_fresh(early, ist(2026, 11, 27, 9, 0))


# ---------------------------------------------------------------- fetching


@pytest.fixture()
def sim() -> KiteSimulator:
    return KiteSimulator(today=TODAY)


def test_fetch_from_the_simulator_writes_the_cache(
    tmp_path: Path, sim: KiteSimulator, kite_fixtures: Path
) -> None:
    real = parse_instruments_csv((kite_fixtures / "instruments_all.csv").read_text())
    sim = KiteSimulator(today=TODAY, extra_instruments=real)
    seen: list[int] = []
    with simulator_thread(sim) as url:
        rows, meta = fetch_instruments(tmp_path, url, progress=lambda done, _t: seen.append(done))
    assert rows == sim.instruments
    assert meta.rows == len(sim.instruments) and meta.source == url + "/instruments"
    assert seen and seen[-1] == len(to_csv(sim.instruments).encode())
    assert load_cache(tmp_path)[0] == rows


def test_truncated_dump_never_replaces_a_good_cache(tmp_path: Path, sim: KiteSimulator) -> None:
    with simulator_thread(sim) as url:
        rows, meta = fetch_instruments(tmp_path, url)
        sim.truncate_dump = True
        with pytest.raises(InstrumentsError, match="cut short"):
            load_instruments(tmp_path, url, force=True)
    assert load_cache(tmp_path) == (rows, meta)


def test_fresh_cache_is_used_without_a_request(tmp_path: Path, sim: KiteSimulator) -> None:
    with simulator_thread(sim) as url:
        load_instruments(tmp_path, url)
        load_instruments(tmp_path, url)
        assert sim.count("/instruments") == 1
        load_instruments(tmp_path, url, force=True)
        assert sim.count("/instruments") == 2


def test_stale_or_corrupt_cache_is_fetched_again(tmp_path: Path, sim: KiteSimulator) -> None:
    with simulator_thread(sim) as url:
        stale = datetime.now(UTC).replace(year=2020)
        save_cache(tmp_path, sim.instruments[:10], url, stale)
        rows, _ = load_instruments(tmp_path, url)
        assert len(rows) == len(sim.instruments) and sim.count("/instruments") == 1
        data_path, _ = cache_paths(tmp_path)
        with open(data_path, "r+b") as fh:
            fh.seek(100)
            fh.write(b"#")
            os.fsync(fh.fileno())
        rows2, _ = load_instruments(tmp_path, url)
        assert rows2 == rows and sim.count("/instruments") == 2


def test_unreachable_api_says_what_to_check(tmp_path: Path) -> None:
    with pytest.raises(InstrumentsError, match="instruments fetch"):
        fetch_instruments(tmp_path, "http://127.0.0.1:9")
    assert read_metadata(tmp_path) is None


def test_failed_refresh_falls_back_to_an_intact_stale_cache(tmp_path: Path, sim) -> None:
    with simulator_thread(sim) as url:
        rows, meta = fetch_instruments(tmp_path, url, now=datetime(2026, 11, 26, 3, tzinfo=UTC))
        sim.truncate_dump = True
        later = datetime(2026, 11, 27, 3, tzinfo=UTC)  # after 08:00 IST: the cache is stale
        assert load_instruments(tmp_path, url, now=later) == (rows, meta)
        with pytest.raises(InstrumentsError, match="cut short"):
            load_instruments(tmp_path, url, now=later, force=True)


def test_authorization_is_asked_for_only_when_fetching(tmp_path: Path, sim) -> None:
    asked: list[int] = []

    def authorization() -> str:
        asked.append(1)
        return "token k:t"

    with simulator_thread(sim) as url:
        load_instruments(tmp_path, url, authorization=authorization)
        load_instruments(tmp_path, url, authorization=authorization)
    assert asked == [1]


def test_a_cache_from_another_api_is_neither_fresh_nor_a_fallback(tmp_path: Path, sim) -> None:
    """A dump fetched from the simulator must not be used against the real Kite (its tokens
    are made up), nor the reverse, however fresh it is."""
    other = KiteSimulator(today=TODAY, seed=5)
    with simulator_thread(other) as other_url:
        fetch_instruments(tmp_path, other_url)
    with simulator_thread(sim) as url:
        rows, meta = load_instruments(tmp_path, url)
        assert sim.count("/instruments") == 1 and meta.source == url + "/instruments"
        assert rows == sim.instruments
        assert is_fresh(meta, datetime.now(UTC), url)
        assert not is_fresh(meta, datetime.now(UTC), other_url)
    with simulator_thread(other) as other_url:
        other.truncate_dump = True  # the refresh fails: the other API's cache is no fallback
        with pytest.raises(InstrumentsError, match="cut short"):
            load_instruments(tmp_path, other_url)


# csv refuses a field over 128 KiB with csv.Error, which is not an InstrumentsError: it escaped
# the refresh job's handler (so no retry within minutes) and `instruments fetch` (a traceback).
@pytest.mark.parametrize(
    "text",
    [
        "x" * 10_000_000 + "\n1\n",  # a header that is one huge field
        ",".join(COLUMNS) + '\n1,2,"' + "y" * 200_000 + '",n,0,,0,0.05,1,EQ,NSE,NSE\n',
        ",".join(COLUMNS) + '\n1,2,"unterminated' + "z" * 200_000,
    ],
)
def test_a_dump_with_a_huge_field_is_refused_with_one_bounded_line(text: str) -> None:
    with pytest.raises(InstrumentsError) as info:
        parse_instruments_csv(text)
    assert len(str(info.value)) < 500 and "shriven instruments fetch --force" in str(info.value)


def test_a_header_without_the_columns_is_named_within_bounds() -> None:
    with pytest.raises(InstrumentsError) as info:
        parse_instruments_csv(",".join(["h" * 1000] * 100) + "\n1\n")
    assert len(str(info.value)) < 800

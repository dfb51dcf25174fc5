"""Hostile Binance input never stops the recorder, never becomes a record, never poisons a book.

Fuzzed with hypothesis (fixed seed, fixed budget): arbitrary JSON values, and real messages from
tests/fixtures mutated so that the venue's schema refuses them (wrong types, huge numbers, NaN
and Infinity, unicode digits, big strings, deep nesting, wrong stream names, other symbols,
truncation), plus diffs with ids no genuine diff can have. The books are checked against a
reference written here: plain dicts following Binance's documented local-book procedure, fed
the genuine messages alone.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from shriven.app.simulators import Simulators
from shriven.app.startup import add_binance, wal_options
from shriven.book import BookKeeper
from shriven.config import Settings
from shriven.events import (
    BinanceDepth,
    BinanceDepthSnapshot,
    BinanceTrade,
    Record,
    Status,
    StatusKind,
    decode_batch,
    encode_batch,
)
from shriven.feeds.base import FeedStats
from shriven.feeds.binance.parse import (
    ERROR_KINDS,
    BinanceMessageError,
    parse_depth_snapshot,
    parse_message,
    record_ok,
)
from shriven.pipeline.daemon import Pipeline
from shriven.wal import StoreWriter, read_records

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "binance"
BTC = FIX / "hftbacktest_spot_btcusdt_20240808"
DIFFS = (BTC / "depth_diff_BTCUSDT.jsonl").read_text().splitlines()[:60]
TRADES = (BTC / "trade_BTCUSDT.jsonl").read_text().splitlines()[:20]
SNAPSHOT = (BTC / "depth_snapshot_BTCUSDT.json").read_bytes()
ALL_KINDS = (FIX / "cryptofeed_spot" / "combined_stream_all.jsonl").read_text().splitlines()
SYMBOLS = frozenset({"BTCUSDT"})
KEY = "binance:BTCUSDT"

# ------------------------------------------------------------------ the reference book


class ReferenceBook:
    """Binance's "How to manage a local order book correctly", on plain dicts of the venue's
    strings, written from the documentation and sharing nothing with shriven.book."""

    def __init__(self) -> None:
        self.buffer: list[dict[str, Any]] = []
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.last = -1  # lastUpdateId of the book; -1 = no snapshot yet
        self.first = False

    def diff(self, d: dict[str, Any]) -> None:
        if self.last < 0:
            self.buffer.append(d)
            return
        if d["u"] <= self.last:
            return  # step 3: older than the book
        if self.first:
            assert d["U"] <= self.last + 1 <= d["u"], "genuine stream must straddle"
            self.first = False
        else:
            assert d["U"] == self.last + 1, "genuine stream must be contiguous"
        for side, key in ((self.bids, "b"), (self.asks, "a")):
            for price, qty in d[key]:
                if float(qty) == 0:
                    side.pop(price, None)
                else:
                    side[price] = qty
        self.last = d["u"]

    def snapshot(self, s: dict[str, Any]) -> bool:
        """Step 2: False (fetch again) when the snapshot is older than the buffered diffs."""
        pending = [d for d in self.buffer if d["u"] > s["lastUpdateId"]]
        if pending and pending[0]["U"] > s["lastUpdateId"] + 1:
            return False
        self.bids = {p: q for p, q in s["bids"]}
        self.asks = {p: q for p, q in s["asks"]}
        self.last = s["lastUpdateId"]
        self.first = True
        self.buffer = []
        for d in pending:
            self.diff(d)
        return True

    def levels(self) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        bids = sorted(((float(p), float(q)) for p, q in self.bids.items()), reverse=True)
        asks = sorted((float(p), float(q)) for p, q in self.asks.items())
        return bids, asks

    def as_snapshot(self) -> bytes:
        return json.dumps(
            {
                "lastUpdateId": self.last,
                "bids": [[p, q] for p, q in self.bids.items()],
                "asks": [[p, q] for p, q in self.asks.items()],
            }
        ).encode()


# ------------------------------------------------------------------ hostile input

# Values int(), str(), bool() or float() took but the schema must not.
HOSTILE_VALUES: list[Any] = [
    "1_001", "\uff11\uff12", "\u0663", 1.9, 1.0, True, False, "false", "true", None, 2**64,
    2**63, -1, "NaN", "-1", "inf", "Infinity", "-0", "\ud800", ["BTCUSDT"], "ab", "", " 1",
    "1e5", "0x10", "1.", ".5", "+1", [["abc", "1"]], [["1"]], [["1", "2", "3"]], [["ab"]],
    [[1, 2]], {"x": 1}, [], "1" * 50, "9" * 100_000,
]  # fmt: skip
# Number tokens json.dumps cannot write.
RAW_TOKENS = ["1e400", "NaN", "Infinity", "-Infinity", "-0.0", "1E+999", "0.1e-999999"]
REQUIRED = {
    "depthUpdate": ["e", "E", "s", "U", "u", "b", "a"],
    "trade": ["e", "E", "s", "t", "p", "q", "T", "m"],
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(HOSTILE_VALUES[:-1]),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
    max_leaves=12,
)


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A real message the schema must refuse."""
    msg = json.loads(draw(st.sampled_from(DIFFS[:20] + TRADES)))
    data = msg["data"]
    fields = REQUIRED[data["e"]]
    how = draw(st.integers(0, 9))
    if how == 0:  # a required field gets a value of the wrong type or format
        field = draw(st.sampled_from(fields))
        value = draw(st.sampled_from(HOSTILE_VALUES))
        if field == "s" and value in ("BTCUSDT",):
            value = "btcusdt"
        if field == "m" and type(value) is bool:
            value = "false"
        if field == "e" and value in ("depthUpdate", "trade"):
            value = None
        if field in ("b", "a") and value == []:
            value = [[]]  # no levels is a valid side
        data[field] = value
    elif how == 1:  # a required field is missing
        del data[draw(st.sampled_from(fields))]
    elif how == 2 and data["e"] == "depthUpdate" and (data["b"] or data["a"]):
        side = data["b"] if data["b"] else data["a"]
        i = draw(st.integers(0, len(side) - 1))
        bad = draw(st.sampled_from([v for v in HOSTILE_VALUES if not isinstance(v, int)]))
        if draw(st.booleans()):
            side[i] = bad
        else:
            side[i][draw(st.integers(0, 1))] = bad if bad != "" else "x"
    elif how == 3:  # the stream name disagrees with the payload
        other = draw(st.sampled_from(["ethusdt@trade", "btcusdt@bookTicker", "ethusdt@depth"]))
        msg["stream"] = (
            "btcusdt@trade" if data["e"] == "depthUpdate" and other == "ethusdt@depth" else other
        )
        if data["e"] == "trade" and msg["stream"] == "btcusdt@trade":
            msg["stream"] = "btcusdt@depth@100ms"
    elif how == 4:  # a symbol nobody subscribed, stream and payload agreeing
        sym = draw(st.sampled_from(["XRPUSDT", "BTCUSDC", "X"]))
        data["s"] = sym
        msg["stream"] = f"{sym.lower()}@" + ("trade" if data["e"] == "trade" else "depth@100ms")
    elif how == 5:  # a number token JSON cannot carry in a field that must be an integer
        field = draw(st.sampled_from(["E", "U", "u"] if data["e"] == "depthUpdate" else ["t"]))
        data[field] = "@@@"
        return _dumps(msg).replace('"@@@"', draw(st.sampled_from(RAW_TOKENS)))
    elif how == 6:  # cut short
        text = _dumps(msg)
        return text[: draw(st.integers(0, len(text) - 1))]
    elif how == 7:  # nested far too deep, in an extra field or as the whole message
        # (An extra field nested ~1,000 deep may or may not fit msgspec's limit, which follows
        # the interpreter's recursion limit; either outcome is safe, so it is not fuzzed.)
        depth = draw(st.sampled_from([5_000, 100_000]))
        if draw(st.booleans()):
            return "[" * draw(st.sampled_from([1_000, depth])) + "]" * depth
        data["x"] = "@@@"
        return _dumps(msg).replace('"@@@"', "[" * depth + "]" * depth)
    elif how == 8:  # arbitrary JSON where the payload should be
        msg["data"] = draw(json_values)
    else:  # bytes that are not UTF-8 inside the symbol, as a websocket binary frame would be
        text = _dumps(msg)
        at = text.index('"s":"') + 5
        return text[:at] + draw(st.sampled_from(["\udcff", "\x00", "\u200b"])) + text[at:]
    return _dumps(msg)


hostile = st.one_of(
    mutated(),
    json_values.map(_dumps),
    st.text(max_size=50),
    st.sampled_from(ALL_KINDS),  # real bookTicker, aggTrade, kline... (and other symbols' diffs)
)


def impossible_ids(prev_u: int) -> list[str]:
    """Diffs whose ids no genuine diff can have, given the book's last id ``prev_u``."""
    base = json.loads(DIFFS[-1])
    out = []
    for first, last in (
        (prev_u + 1, 2**62),  # in sequence but would move the book's id almost to int64
        (prev_u + 1, prev_u + 1 + 10**9 + 1),  # spans more ids than can happen
        (prev_u + 5, prev_u + 2),  # last id below the first
        (2**62, 2**62),  # far ahead
    ):
        base["data"]["U"], base["data"]["u"] = first, last
        out.append(_dumps(base))
    return out


# ------------------------------------------------------------------ the pure path


def run_pure(stream: list[tuple[str, str]]) -> tuple[BookKeeper, list[Record], FeedStats]:
    """parse -> BookKeeper -> WAL codec, as the recorder does, for ("genuine"|"hostile"|
    "snapshot", text) items; asserts nothing escapes but BinanceMessageError."""
    keeper = BookKeeper()
    stats = FeedStats("binance")
    records: list[Record] = []
    for i, (_kind, text) in enumerate(stream):
        try:
            if _kind == "snapshot":
                rec: Record | None = parse_depth_snapshot(text, "BTCUSDT", i, i)
            else:
                rec = parse_message(text, i, i, SYMBOLS)
        except BinanceMessageError as exc:
            assert exc.kind in ERROR_KINDS
            assert len(exc.sample) <= 4 * 200 + 3  # repr of at most 200 bytes
            stats.count_error(exc.kind)
            continue
        if rec is None:
            continue
        keeper.apply(rec)
        records.append(rec)
    wire = decode_batch(encode_batch(records))
    assert wire == records
    return keeper, records, stats


def _fields(r: Record | None) -> tuple[object, ...]:
    assert r is not None
    return tuple(getattr(r, f) for f in r.__slots__ if f not in ("recv_ns", "seq"))  # type: ignore[union-attr]


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(st.tuples(st.integers(0, len(DIFFS) - 1), hostile), min_size=5, max_size=30),
    st.integers(0, len(DIFFS) - 1),
)
def test_hostile_messages_never_escape_become_records_or_poison_the_book(
    inserts: list[tuple[int, str]], ids_at: int
) -> None:
    genuine = [("genuine", t) for t in DIFFS]
    genuine[10:10] = [("genuine", t) for t in TRADES]
    stream: list[tuple[str, str]] = []
    by_pos: dict[int, list[str]] = {}
    for pos, text in inserts:
        by_pos.setdefault(pos, []).append(text)
    ref = ReferenceBook()
    snapshot_at = 3  # the snapshot arrives with some diffs buffered, as on the live path
    checkpoints = []
    for i, item in enumerate(genuine):
        if i == snapshot_at:
            stream.append(("snapshot", SNAPSHOT.decode()))
        stream.extend(("hostile", t) for t in by_pos.get(i, []))
        stream.append(item)
        checkpoints.append(len(stream))
    keeper, records, stats = run_pure(stream)
    genuine_records = {_fields(parse_message(t, 0, 0, SYMBOLS)) for t in DIFFS + TRADES}
    snapshot_record = _fields(parse_depth_snapshot(SNAPSHOT, "BTCUSDT", 0))
    assert len(records) == len(genuine) + 1, "a hostile message became a record"
    for r in records:
        assert record_ok(r), r  # no garbage record
        # and nothing but what a genuine message says (duplicates of one are harmless)
        assert _fields(r) in genuine_records or _fields(r) == snapshot_record, r
    for t in DIFFS:
        ref.diff(json.loads(t)["data"])
    ref.snapshot(json.loads(SNAPSHOT))
    assert keeper.is_valid(KEY), "genuine messages alone must keep the book in sync"
    assert keeper.book(KEY).levels() == ref.levels()
    assert keeper.book(KEY).update_id == ref.last
    assert set(stats.errors_by_kind) <= ERROR_KINDS

    # Ids that cannot be genuine: a gap (the book says invalid), then a fresh snapshot brings it
    # back equal to the reference; never a valid book frozen at an absurd id.
    bad = impossible_ids(ref.last)[ids_at % 4]
    keeper.apply(parse_message(bad, 1, 1, SYMBOLS))  # type: ignore[arg-type]
    assert not keeper.is_valid(KEY)
    keeper.apply(parse_depth_snapshot(ref.as_snapshot(), "BTCUSDT", 2, 2))
    assert keeper.is_valid(KEY) and keeper.book(KEY).levels() == ref.levels()
    nxt = json.loads(DIFFS[0])
    nxt["data"].update(U=ref.last + 1, u=ref.last + 3, b=[["61000.00000000", "1.00000000"]])
    keeper.apply(parse_message(_dumps(nxt), 3, 3, SYMBOLS))  # type: ignore[arg-type]
    ref.diff(nxt["data"])
    assert keeper.is_valid(KEY) and keeper.book(KEY).levels() == ref.levels()


# ------------------------------------------------------------------ the real pipeline


def _settings(tmp: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        cache_dir=tmp / "cache",
        health_port=0,
        pipeline={"data_dir": str(tmp / "market"), "snapshot_interval_secs": 1},  # type: ignore[arg-type]
    )


async def _record_with_hostile_input(tmp: Path, texts: list[str]) -> None:
    sims = Simulators(seed=5)
    cfg_settings = await sims.start(
        _settings(tmp), ("binance",), binance_symbols=("BTCUSDT", "ETHUSDT"), keep_ledgers=True
    )
    sim = sims.binance
    assert sim is not None
    sim.interval = 0.01
    cfg = cfg_settings.pipeline
    p = Pipeline(cfg, open_store=lambda: StoreWriter(cfg.data_dir, wal_options(cfg)), health_port=0)
    add_binance(p, cfg_settings)
    await p.start()
    feed = p.feeds[0]
    try:
        await _until(lambda: all(p.books.is_valid(f"binance:{s}") for s in sim.books), "sync")
        ids = sim.books["BTCUSDT"].update_id
        sim.send_raw([*texts, *impossible_ids(ids)[2:]])
        await _until(lambda: not sim._raw, "hostile input sent")
        await _until(lambda: feed.stats.gaps >= 1, "a gap for the impossible ids")
        await _until(lambda: all(p.books.is_valid(f"binance:{s}") for s in sim.books), "resync")
        sim.stall(600)
        await asyncio.sleep(0.5)
        metrics = p.metrics.render()
    finally:
        await p.shutdown()
        await sims.stop()
    assert p.exit_code == 0
    assert feed.stats.task_restarts == 0 and p.stats.recorder_errors == {}
    assert set(feed.stats.errors_by_kind) <= ERROR_KINDS | {"stale_snapshot"}
    assert len(metrics) < 32_000, "metrics grew with the input"

    records = list(read_records(Path(cfg.data_dir) / "ticks"))
    assert all(record_ok(r) for r in records)
    sent = {(e.kind, e.text) for e in sim.ledger if e.kind in ("depth", "trade")}
    genuine = {json.loads(t)["data"]["u" if k == "depth" else "t"] for k, t in sent}
    absurd = {json.loads(t)["data"]["u"] for t in impossible_ids(ids)[2:]}
    for r in records:
        if type(r) is BinanceDepth:
            assert r.last_update_id in genuine or r.last_update_id in absurd
        elif type(r) is BinanceTrade:
            assert r.trade_id in genuine
    gaps = [r for r in records if type(r) is Status and r.kind == StatusKind.GAP]
    assert {g.instrument for g in gaps} >= {"BTCUSDT"}

    # Every valid book equals the reference built from the genuine records in the WAL.
    for sym in sim.books:
        ref = ReferenceBook()
        for r in records:
            if (
                type(r) is Status
                and r.venue == "binance"
                and (
                    r.kind == StatusKind.DISCONNECTED
                    or (r.kind == StatusKind.GAP and r.instrument == sym)
                )
                and ref.last >= 0
            ):
                # Binance's procedure starts again after a cut stream or a gap: buffer, then the
                # next snapshot (which may be written before the first diff that shows the hole)
                ref.last, ref.buffer = -1, []
            elif type(r) is BinanceDepthSnapshot and r.symbol == sym and ref.last < 0:
                # a genuine snapshot only matters while the reference has no book
                ref.snapshot({"lastUpdateId": r.last_update_id, "bids": r.bids, "asks": r.asks})
            elif type(r) is BinanceDepth and r.symbol == sym and r.last_update_id not in absurd:
                if ref.last >= 0 and r.first_update_id > ref.last + 1:
                    ref.last = -1  # the genuine stream had a hole: wait for the next snapshot
                    ref.buffer = []
                ref.diff({"U": r.first_update_id, "u": r.last_update_id, "b": r.bids, "a": r.asks})
        book = p.books.book(f"binance:{sym}")
        assert p.books.is_valid(f"binance:{sym}") and book is not None
        assert book.levels() == sim.true_book(sym, book.update_id), sym
        # Under heavy CPU load the reference can end still waiting for a snapshot (ref.last < 0)
        # that the keeper used, by WAL order around the last reconnect; the venue's true book
        # above is the stronger oracle, so the reference is compared only while it holds a book.
        if ref.last >= 0:
            assert book.levels() == ref.levels(), sym


async def _until(cond: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # each example runs a recorder: no shrinking
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(hostile, min_size=100, max_size=100))
def test_recorder_with_hostile_input_keeps_running_and_its_books_right(texts: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_record_with_hostile_input(Path(tmp), texts))

"""The whole recorder against both simulators on loopback, wired exactly as `shriven run --sim`:
every message the simulators sent is in the WAL once, in order, between connection markers; the
book snapshots equal the simulators' true books; injected faults show up and the run goes on."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from shriven.app.kite_universe import KiteUniverse, add_kite
from shriven.app.simulators import Simulators
from shriven.app.startup import add_binance, wal_options
from shriven.config import Settings
from shriven.events import (
    BinanceDepth,
    BinanceTrade,
    BookSnapshot,
    KiteTick,
    Record,
    Status,
    StatusKind,
    kite_price_divisor,
)
from shriven.feeds.kite.instruments import Instrument
from shriven.feeds.kite.ticker import KiteTickerFeed
from shriven.pipeline.daemon import Pipeline
from shriven.universe.recorded import load_recorded
from shriven.wal import StoreWriter, read_records

SYMBOLS = ("BTCUSDT", "ETHUSDT")

# Per running pipeline (by id), the venue data records it has written to the WAL so far: what
# quiesce waits on, rather than on a pause.
WRITTEN: dict[int, Counter[str]] = {}


def count_written(counts: Counter[str]) -> Callable[[Sequence[Record]], None]:
    def tap(batch: Sequence[Record]) -> None:
        for r in batch:
            t = type(r)
            if t is KiteTick:
                counts["kite"] += 1
            elif t is BinanceDepth or t is BinanceTrade:
                counts["binance"] += 1

    return tap


def settings_for(
    tmp_path: Path, top: dict[str, object] | None = None, **pipeline: object
) -> Settings:
    cfg = {
        "data_dir": str(tmp_path / "market"),
        "spot_symbols": ["NIFTY 50"],
        "option_strike_range": 3,
        "snapshot_interval_secs": 1,
        **pipeline,
    }
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        cache_dir=tmp_path / "cache",
        health_port=0,
        pipeline=cfg,  # type: ignore[arg-type]
        **(top or {}),  # type: ignore[arg-type]
    )


async def wait_for(
    cond: Callable[[], bool], timeout: float = 45.0, what: str = "", state: object = None
) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            shown = state() if callable(state) else state
            raise AssertionError(f"timed out waiting for {what}; state: {shown}")
        await asyncio.sleep(0.05)


async def start_recorder(
    tmp_path: Path,
    store: type[StoreWriter] = StoreWriter,
    top: dict[str, object] | None = None,
    *,
    spots: dict[str, float] | None = None,
    prepare: Callable[[Simulators], None] | None = None,
    **pipeline: object,
) -> tuple[Pipeline, Simulators, Settings, KiteUniverse]:
    """The recorder on both simulators; ``prepare`` changes them before Kite is planned,
    ``spots`` are --spot overrides."""
    sims = Simulators(seed=11)
    settings = await sims.start(
        settings_for(tmp_path, top, **pipeline),
        ("kite", "binance"),
        binance_symbols=SYMBOLS,
        kite_ticks_per_second=1_500.0,
        keep_ledgers=True,
    )
    if prepare is not None:
        prepare(sims)
    cfg = settings.pipeline
    p = Pipeline(cfg, open_store=lambda: store(cfg.data_dir, wal_options(cfg)), health_port=0)
    universe = await add_kite(p, settings, spots)
    add_binance(p, settings)
    WRITTEN[id(p)] = Counter()
    p.add_tap(count_written(WRITTEN[id(p)]), durable=False)
    await p.start()
    return p, sims, settings, universe


def metric(body: str, series: str) -> float:
    """The value of one Prometheus text series (fails if it is absent)."""
    for line in body.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    raise AssertionError(f"no series {series} in /metrics")


async def spot_moves_to(
    universe: KiteUniverse, sims: Simulators, plan: object, rupees: float
) -> None:
    """Move the spot on the ticker simulator and wait until its ticks, through the real feed
    and its tap, have brought the price the re-centring reads near ``rupees``."""
    assert sims.ticker is not None
    token = plan.spot.instrument_token  # type: ignore[attr-defined]
    near = plan.strike_interval / 4  # type: ignore[attr-defined]
    sims.ticker.move_price(token, rupees)
    div = kite_price_divisor(token)

    def arrived() -> bool:
        wire = universe.spot.last_wire.get(token)
        return wire is not None and abs(wire / div - rupees) < near

    await wait_for(arrived, 20, "the spot move to arrive in ticks")
    sims.ticker.move_price(token, rupees)  # back on the strike after the walk of the wait


def ledger_binance(sims: Simulators) -> list[tuple[str, str, int, int]]:
    assert sims.binance is not None
    out = []
    for e in sims.binance.ledger:
        if e.kind not in ("depth", "trade") or e.conn == 0:
            continue
        d = json.loads(e.text)["data"]
        if e.kind == "depth":
            out.append(("depth", d["s"], d["U"], d["u"]))
        else:
            out.append(("trade", d["s"], d["t"], d["t"]))
    return out


def wal_binance(records: list[Record]) -> list[tuple[str, str, int, int]]:
    out = []
    for r in records:
        if type(r) is BinanceDepth:
            out.append(("depth", r.symbol, r.first_update_id, r.last_update_id))
        elif type(r) is BinanceTrade:
            out.append(("trade", r.symbol, r.trade_id, r.trade_id))
    return out


async def quiesce(p: Pipeline, sims: Simulators) -> None:
    """Stop the simulators sending and wait until every depth diff, trade and tick they sent
    is in the WAL or was dropped by the queue (counted)."""
    binance, ticker = sims.binance, sims.ticker
    assert binance is not None and ticker is not None
    binance.stall(600)
    ticker.stall()
    written, dropped = WRITTEN[id(p)], p.queue.stats.dropped_by_stream

    def settled() -> dict[str, tuple[int, int]]:
        # counted each time: a send in flight when the stall began joins the ledger after it
        sent = {
            "binance": sum(1 for e in binance.ledger if e.kind in ("depth", "trade") and e.conn),
            "kite": sum(len(v) for v in ticker.ledger.values()),
        }
        return {v: (n, written[v] + dropped.get(v, 0)) for v, n in sent.items()}

    await wait_for(
        lambda: all(done >= n for n, done in settled().values()),
        30,
        "the recorder to write what the simulators sent",
        state=settled,
    )


async def test_every_simulated_message_is_recorded_once_in_order_and_books_match_the_truth(
    tmp_path: Path,
) -> None:
    p, sims, settings, _universe = await start_recorder(tmp_path)

    def books_on_both_venues() -> bool:
        venues = Counter(k.partition(":")[0] for k in p.books.valid_books())
        return venues["binance"] == len(SYMBOLS) and venues["kite"] >= 5

    try:
        # Rounds before the books exist hold no snapshots: count two after they do.
        await wait_for(books_on_both_venues, 30, "books on both venues")
        rounds = p.stats.snapshot_rounds
        await wait_for(lambda: p.stats.snapshot_rounds >= rounds + 2, 30, "two snapshot rounds")
        await quiesce(p, sims)
    finally:
        await p.shutdown()
        await sims.stop()
    assert p.exit_code == 0
    data = Path(settings.pipeline.data_dir)
    records = list(read_records(data / "ticks"))

    # Binance: exactly the ledger, in order, after the connected marker.
    first_connected = next(
        i for i, r in enumerate(records) if type(r) is Status and r.venue == "binance"
    )
    assert records[first_connected].kind == StatusKind.CONNECTED  # type: ignore[union-attr]
    assert wal_binance(records[:first_connected]) == []
    assert wal_binance(records) == ledger_binance(sims)

    # Kite: per token, every packet the simulator sent, once, in order, between markers.
    kite = [r for r in records if type(r) is KiteTick]
    kite_status = [
        r
        for r in records
        if type(r) is Status and r.venue == "kite" and r.kind != StatusKind.SUBSCRIPTIONS_CHANGED
    ]
    assert kite_status[0].kind == StatusKind.CONNECTED
    assert kite_status[-1].kind == StatusKind.DISCONNECTED
    assert kite and kite_status[0].seq < kite[0].seq and kite[-1].seq < kite_status[-1].seq
    assert sims.ticker is not None
    assert kite_recorded(records) == kite_ledger(sims)
    # The simulated spot walks from the REST quote, around the strikes the instruments list.
    spot = next(t for t in kite if t.instrument_token == 256265)
    assert abs(spot.last_price / 100 - 25_000) < 250
    # Sequence numbers per stream are consecutive: nothing was lost between adapter and disk.
    for stream in ("kite", "binance"):
        seqs = [r.seq for r in records if _stream(r) == stream]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), stream

    # Books: every Binance snapshot equals the simulator's true book at that update id; every
    # Kite snapshot equals the depth of the tick it was taken from.
    snaps = [r for r in read_records(data / "lob") if type(r) is BookSnapshot]
    assert {s.venue for s in snaps} == {"kite", "binance"}
    kite_by_seq = {t.seq: t for t in kite}
    assert sims.binance is not None
    checked = Counter()
    for s in snaps:
        if s.venue == "binance":
            bids, asks = sims.binance.true_book(s.instrument, s.update_id)
            assert (list(s.bids), list(s.asks)) == (bids, asks), (s.instrument, s.update_id)
        else:
            tick = kite_by_seq[s.update_id]
            div = kite_price_divisor(tick.instrument_token)
            want_bids = [(p / div, float(q)) for p, q, _ in tick.bids if p and q]
            want_asks = [(p / div, float(q)) for p, q, _ in tick.asks if p and q]
            assert (list(s.bids), list(s.asks)) == (want_bids, want_asks)
        checked[s.venue] += 1
    assert checked["binance"] >= 4 and checked["kite"] >= 10
    aligned = {s.recv_ns for s in snaps if s.recv_ns % 1_000_000_000 == 0}
    assert len(aligned) >= 2


def kite_ledger(sims: Simulators) -> dict[int, list[KiteTick]]:
    assert sims.ticker is not None
    return {tok: [pk.tick for pk in pkts] for tok, pkts in sims.ticker.ledger.items() if pkts}


def kite_recorded(records: list[Record]) -> dict[int, list[KiteTick]]:
    by_token: dict[int, list[KiteTick]] = {}
    for t in records:
        if type(t) is KiteTick:
            by_token.setdefault(t.instrument_token, []).append(
                dataclasses.replace(t, recv_ns=0, seq=0)
            )
    return by_token


class SlowDiskStore(StoreWriter):
    """A real store on a slow disk: every tick frame takes 30 ms more."""

    def append_ticks(self, records: Sequence[Record]) -> int:
        time.sleep(0.03)
        return super().append_ticks(records)


async def test_a_slow_disk_makes_the_real_adapters_wait_and_nothing_is_lost(
    tmp_path: Path,
) -> None:
    p, sims, settings, _u = await start_recorder(
        tmp_path, SlowDiskStore, max_queue_size=300, batch_max_records=20
    )
    try:
        await wait_for(lambda: p.queue.stats.waits > 20, what="the queue to fill")
        await quiesce(p, sims)
    finally:
        await p.shutdown()
        await sims.stop()
    assert p.queue.stats.dropped == 0
    assert p.queue.stats.high_water >= 300  # it filled to its bound
    assert "shriven_queue_full_waits_total" in p.metrics.render().decode()
    records = list(read_records(Path(settings.pipeline.data_dir) / "ticks"))
    assert kite_recorded(records) == kite_ledger(sims)
    assert wal_binance(records) == ledger_binance(sims)


def _stream(r: Record) -> str:
    if type(r) is KiteTick:
        return "kite"
    if type(r) in (BinanceDepth, BinanceTrade) or type(r).__name__ == "BinanceDepthSnapshot":
        return "binance"
    return getattr(r, "venue", "")


async def test_injected_faults_become_status_records_and_metrics_and_recording_continues(
    tmp_path: Path,
) -> None:
    p, sims, settings, _universe = await start_recorder(tmp_path)
    assert sims.binance is not None and sims.ticker is not None and sims.kite is not None
    feeds = {f.venue: f.stats for f in p.feeds}
    try:
        await wait_for(lambda: feeds["binance"].records > 10 and feeds["kite"].records > 100)
        # Binance: a sequence gap, malformed JSON, a dropped connection.
        sims.binance.inject_gap("BTCUSDT", 2)
        await wait_for(lambda: p.stats.gaps_by_venue.get("binance", 0) >= 1, what="a gap")
        sims.binance.send_malformed(1)
        await wait_for(lambda: feeds["binance"].parse_errors >= 1, what="a parse error")
        await sims.binance.drop_connections(abrupt=True)
        await wait_for(lambda: feeds["binance"].reconnects >= 1, what="a Binance reconnect")
        # Kite: malformed packet, dropped connection, expired token (fresh login on reconnect).
        sims.ticker.send_malformed("bad_length")
        await wait_for(lambda: feeds["kite"].parse_errors >= 1, what="a Kite parse error")
        sims.kite.expire_tokens()
        await sims.ticker.drop_connections()
        await wait_for(lambda: feeds["kite"].reconnects >= 1, what="a Kite reconnect")
        # Still recording afterwards, on both venues.
        before = {v: s.records for v, s in feeds.items()}
        await wait_for(
            lambda: (
                all(feeds[v].records > before[v] + 5 for v in before) and feeds["kite"].connected
            ),
            what="records after the faults",
            state=feeds,
        )
        _status, body = p.health_url, p.metrics.render().decode()
    finally:
        await p.shutdown()
        await sims.stop()
    assert p.exit_code == 0
    records = list(read_records(Path(settings.pipeline.data_dir) / "ticks"))
    kinds = Counter((r.venue, r.kind) for r in records if type(r) is Status)
    assert kinds[("binance", StatusKind.GAP)] >= 1
    assert kinds[("binance", StatusKind.RESYNCED)] >= 2  # start and after the gap
    assert kinds[("binance", StatusKind.DISCONNECTED)] >= 1
    assert kinds[("kite", StatusKind.DISCONNECTED)] >= 2  # the drop and the final stop
    assert kinds[("kite", StatusKind.CONNECTED)] >= 2
    # The values, not just the names: each fault is counted.
    assert metric(body, 'shriven_gaps_total{venue="binance"}') >= 1
    assert metric(body, 'shriven_gaps_total{venue="binance"}') == kinds[("binance", StatusKind.GAP)]
    assert metric(body, 'shriven_feed_reconnects_total{venue="kite"}') >= 1
    assert sims.kite.count("/session/token") >= 2  # the expired token forced a second login


async def test_a_spot_move_recentres_the_chain_on_the_live_connection_and_instruments_refresh(
    tmp_path: Path,
) -> None:
    p, sims, settings, universe = await start_recorder(tmp_path)
    assert sims.ticker is not None
    feeds = {f.venue: f for f in p.feeds}
    kite_feed = feeds["kite"]
    try:
        await wait_for(lambda: kite_feed.stats.records > 50, what="Kite ticks")
        plan = universe.plans[0]
        before = set(plan.tokens)
        # Spot jumps six strikes up on the venue: the ticks carry it to the universe.
        moved = plan.atm_strike + 6 * plan.strike_interval
        await spot_moves_to(universe, sims, plan, moved)
        await universe.check()
        new = universe.plans[0]
        assert new.atm_strike == moved
        added = set(new.tokens) - before
        removed = before - set(new.tokens)
        assert added and removed
        assert set(kite_feed.subscriptions) == set(new.tokens)  # type: ignore[attr-defined]
        # The ticker streams the new strikes on the same connection, no reconnect.
        seen: set[int] = set()

        def new_strikes_arrive() -> bool:
            seen.update(t for t in added if sims.ticker.ledger.get(t))  # type: ignore[union-attr]
            return seen == added

        await wait_for(new_strikes_arrive, what="ticks for the new strikes")
        assert kite_feed.stats.reconnects == 0
        # The 08:00 IST job: a fresh instrument dump, then the same plan (nothing expired).
        assert sims.kite is not None
        fetched = sims.kite.count("/instruments")
        await universe.refresh_instruments()
        assert sims.kite.count("/instruments") == fetched + 1
        await universe.check()
        assert universe.plans[0].tokens == new.tokens
        # A failed refresh keeps the table and is retried within minutes, not tomorrow.
        table = universe.table
        sims.kite.truncate_dump = True
        await universe.refresh_instruments()
        sims.kite.truncate_dump = False
        assert universe.table is table
        assert universe.next_refresh <= time.time() + 300
    finally:
        await p.shutdown()
        await sims.stop()
    records = list(read_records(Path(settings.pipeline.data_dir) / "ticks"))
    changes = [
        json.loads(r.detail)
        for r in records
        if type(r) is Status and r.kind == StatusKind.SUBSCRIPTIONS_CHANGED
    ]
    # What was subscribed at start, then exactly one marker for the one change.
    assert [c["reason"] for c in changes] == ["initial", "recentre"]
    assert set(changes[0]["subscribe"]) == before and changes[0]["modes"] == {
        "full": sorted(before)
    }
    detail = changes[1]
    assert set(detail["subscribe"]) == added and set(detail["unsubscribe"]) == removed
    assert detail["reason"] == "recentre" and detail["symbol"] == "NIFTY 50"
    recorded = {r.instrument_token for r in records if type(r) is KiteTick}
    assert added <= recorded
    # The store names every instrument it ever subscribed, the dropped strikes too.
    named = {i.instrument_token for i in load_recorded(Path(settings.pipeline.data_dir))}
    assert before | added <= named


async def test_ticker_modes_per_instrument_class_reach_the_live_subscriptions(
    tmp_path: Path,
) -> None:
    p, sims, settings, universe = await start_recorder(
        tmp_path, top={"kite_ticker_class_modes": {"option": "quote"}}
    )
    ticker = sims.ticker
    assert ticker is not None
    plan = universe.plans[0]
    options = {o.instrument_token for o in plan.calls + plan.puts}
    others = set(plan.tokens) - options

    def modes_on_the_wire() -> dict[int, str]:
        return {t: m for conn in ticker.subscriptions().values() for t, m in conn.items()}

    try:
        await wait_for(
            lambda: set(modes_on_the_wire()) == set(plan.tokens), what="the initial subscriptions"
        )
        wire = modes_on_the_wire()
        assert {wire[t] for t in options} == {"quote"}
        assert {wire[t] for t in others} == {"full"}
        # A re-centre subscribes the new strikes in their class's mode too.
        moved = plan.atm_strike + 6 * plan.strike_interval
        await spot_moves_to(universe, sims, plan, moved)
        await universe.check()
        added = set(universe.plans[0].tokens) - set(plan.tokens)
        assert added
        await wait_for(lambda: added <= set(modes_on_the_wire()), what="the new strikes")
        assert {modes_on_the_wire()[t] for t in added} == {"quote"}
        await wait_for(
            lambda: all(ticker.ledger.get(t) for t in added), what="ticks for the new strikes"
        )
    finally:
        await p.shutdown()
        await sims.stop()
    records = list(read_records(Path(settings.pipeline.data_dir) / "ticks"))
    tick_modes = {(r.instrument_token, r.mode) for r in records if type(r) is KiteTick}
    assert {m for t, m in tick_modes if t in options | added} == {"quote"}
    assert "full" in {m for t, m in tick_modes if t in {f.instrument_token for f in plan.futures}}


async def test_a_change_the_ticker_refuses_keeps_the_plan_and_is_retried(tmp_path: Path) -> None:
    p, sims, settings, universe = await start_recorder(tmp_path)
    kite_feed = next(f for f in p.feeds if f.venue == "kite")
    assert isinstance(kite_feed, KiteTickerFeed)
    try:
        await wait_for(lambda: kite_feed.stats.records > 50, what="Kite ticks")
        plan = universe.plans[0]
        moved = plan.atm_strike + 6 * plan.strike_interval
        await spot_moves_to(universe, sims, plan, moved)
        limit = kite_feed.max_tokens_per_connection
        kite_feed.max_connections, kite_feed.max_tokens_per_connection = 1, len(plan) - 1
        await universe.check()  # TickerLimitError: logged, not raised
        assert universe.plans[0] is plan or universe.plans[0].atm_strike == plan.atm_strike
        assert set(kite_feed.subscriptions) == set(plan.tokens)
        kite_feed.max_connections, kite_feed.max_tokens_per_connection = 3, limit
        await universe.check()  # the next check applies it
        assert universe.plans[0].atm_strike == moved
        assert set(kite_feed.subscriptions) == set(universe.plans[0].tokens)
    finally:
        await p.shutdown()
        await sims.stop()
    records = list(read_records(Path(settings.pipeline.data_dir) / "ticks"))
    reasons = [
        json.loads(r.detail)["reason"]
        for r in records
        if type(r) is Status and r.kind == StatusKind.SUBSCRIPTIONS_CHANGED
    ]
    assert reasons == ["initial", "recentre"]  # the refused change left no marker


async def test_drop_policy_marks_every_lost_record_and_resyncs_the_books(tmp_path: Path) -> None:
    p, sims, settings, _u = await start_recorder(
        tmp_path,
        SlowDiskStore,
        max_queue_size=40,
        batch_max_records=20,
        queue_full_policy="drop",
    )
    try:
        await wait_for(
            lambda: (
                p.queue.stats.dropped_by_stream.get("binance", 0) > 0
                and p.queue.stats.dropped_by_stream.get("kite", 0) > 0
            ),
            what="drops on both streams",
        )
        binance = next(f for f in p.feeds if f.venue == "binance")
        await wait_for(lambda: binance.stats.resyncs >= 3, what="a resync after the drops")
        await quiesce(p, sims)
    finally:
        await p.shutdown()
        await sims.stop()
    records = list(read_records(Path(settings.pipeline.data_dir) / "ticks"))
    markers = [r for r in records if type(r) is Status and r.kind == StatusKind.DROPPED]
    assert markers
    for stream in ("kite", "binance"):
        runs = [json.loads(m.detail) for m in markers if m.instrument == stream]
        assert sum(r["dropped"] for r in runs) == p.queue.stats.dropped_by_stream[stream]
        # Every seq missing from the WAL is inside a marked run, and only those are missing.
        seqs = {r.seq for r in records if _stream(r) == stream}
        marked = {s for r in runs for s in range(r["first_seq"], r["last_seq"] + 1)}
        everything = set(range(min(seqs | marked), max(seqs | marked) + 1))
        assert everything - seqs == marked
    # The Binance books were resynced after the losses, and every snapshot of a valid book is
    # still the simulator's true book.
    kinds = Counter((r.venue, r.kind) for r in records if type(r) is Status)
    assert kinds[("binance", StatusKind.GAP)] >= 1
    assert kinds[("binance", StatusKind.RESYNCED)] >= 3
    assert sims.binance is not None
    snaps = [r for r in read_records(Path(settings.pipeline.data_dir) / "lob")]
    for s in snaps:
        if type(s) is BookSnapshot and s.venue == "binance":
            bids, asks = sims.binance.true_book(s.instrument, s.update_id)
            assert (list(s.bids), list(s.asks)) == (bids, asks)


def subscription_changes(records: list[Record]) -> list[dict[str, object]]:
    """The JSON detail of every subscriptions_changed marker, in order."""
    return [
        json.loads(r.detail)
        for r in records
        if type(r) is Status and r.kind == StatusKind.SUBSCRIPTIONS_CHANGED
    ]


async def test_a_refresh_listing_a_new_strike_subscribes_it_at_once_with_reason_refresh(
    tmp_path: Path,
) -> None:
    gone: list[Instrument] = []

    def yesterdays_dump_without_25100(sims: Simulators) -> None:
        assert sims.kite is not None
        rows = sims.kite.instruments
        gone.extend(i for i in rows if i.name == "NIFTY" and i.strike == 25_100)
        sims.kite.instruments = [i for i in rows if i not in gone]

    p, sims, settings, universe = await start_recorder(
        tmp_path, spots={"NIFTY 50": 25_000}, prepare=yesterdays_dump_without_25100
    )
    assert sims.kite is not None and sims.ticker is not None
    kite_feed = next(f for f in p.feeds if f.venue == "kite")
    plan = universe.plans[0]
    token = plan.spot.instrument_token
    universe.spot.tokens.clear()  # spot stays where it is: only the listing changes
    universe.spot.last_wire[token] = int(25_010 * kite_price_divisor(token))
    try:
        assert [c.strike for c in plan.calls] == [24_850, 24_900, 24_950, 25_000, 25_050, 25_150,
                                                  25_200]  # fmt: skip
        sims.kite.instruments = [*sims.kite.instruments, *gone]  # the 08:00 dump lists 25100
        await universe.refresh_instruments()
        new = universe.plans[0]
        assert [c.strike for c in new.calls] == [24_850 + 50 * k for k in range(7)]
        added, removed = set(new.tokens) - set(plan.tokens), set(plan.tokens) - set(new.tokens)
        assert {universe.table.by_token[t].strike for t in added} == {25_100}
        assert {universe.table.by_token[t].strike for t in removed} == {25_200}
        assert set(kite_feed.subscriptions) == set(new.tokens)  # type: ignore[attr-defined]
        await wait_for(
            lambda: all(sims.ticker.ledger.get(t) for t in added),  # type: ignore[union-attr]
            what="ticks for the newly listed strike",
        )
    finally:
        await p.shutdown()
        await sims.stop()
    changes = subscription_changes(list(read_records(Path(settings.pipeline.data_dir) / "ticks")))
    assert [c["reason"] for c in changes] == ["initial", "refresh"]
    assert set(changes[1]["subscribe"]) == added and set(changes[1]["unsubscribe"]) == removed
    assert changes[1]["symbol"] == "NIFTY 50"


async def test_run_resolves_symbols_and_spot_overrides_like_the_dry_run(tmp_path: Path) -> None:
    # --symbols "nse:nifty 50" with --spot "NIFTY 50=25500": one index, the given price.
    p, sims, _settings, universe = await start_recorder(
        tmp_path, spots={"NIFTY 50": 25_500}, spot_symbols=["nse:nifty 50"]
    )
    try:
        assert sims.kite is not None
        plan = universe.plans[0]
        assert plan.spot.instrument_token == 256265
        assert plan.spot_price == 25_500 and plan.atm_strike == 25_500
        assert sims.kite.count("/quote/ltp") == 0
    finally:
        await p.shutdown()
        await sims.stop()

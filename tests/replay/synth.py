"""Recorded sessions for replay tests: realistic record streams written through the real
StoreWriter the way the daemon writes them (tick batches; book snapshots on minute boundaries
from a BookKeeper fed in write order)."""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from shriven.book import BookKeeper
from shriven.events import (
    BinanceDepth,
    BinanceDepthSnapshot,
    BinanceTrade,
    BookSnapshot,
    KiteTick,
    Record,
    Status,
    StatusKind,
    kite_price_divisor,
)
from shriven.wal import StoreWriter, WalOptions

NS = 1_000_000_000
# 2026-11-20T09:15:00+05:30
T0 = 1_795_146_300 * NS
NIFTY_SPOT = 256265  # low byte 9: indices
NIFTY_FUT = (48_000 << 8) | 2  # NFO
NIFTY_CE = (48_001 << 8) | 2
BANK_FUT = (49_000 << 8) | 2


@dataclass
class Session:
    ticks: list[Record] = field(default_factory=list)  # write order
    snapshots: list[BookSnapshot] = field(default_factory=list)


def _px(cents: int) -> str:
    """A Binance price string (8 decimals, as the venue sends them)."""
    return f"{cents / 100:.8f}"


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seq = {"kite": 0, "binance": 0, "system": 0}
        self.u: dict[str, int] = {}
        self.books: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
        self.trade_id = 1000

    def qty(self) -> str:
        return f"{self.rng.randint(1, 900) / 1000:.8f}"

    def next_seq(self, stream: str) -> int:
        self.seq[stream] += 1
        return self.seq[stream]

    def status(self, t: int, venue: str, kind: str, instrument: str = "") -> Status:
        return Status(t, self.next_seq(venue), venue, kind, instrument, "")

    def rest_snapshot(self, t: int, symbol: str, mid: int) -> BinanceDepthSnapshot:
        self.u[symbol] = self.u.get(symbol, 5_000_000) + self.rng.randint(5, 50)
        bids = {_px(mid - i): self.qty() for i in range(1, 21)}
        asks = {_px(mid + i): self.qty() for i in range(1, 21)}
        self.books[symbol] = (bids, asks)
        return BinanceDepthSnapshot(
            t,
            self.next_seq("binance"),
            symbol,
            self.u[symbol],
            tuple(sorted(bids.items(), key=lambda kv: -float(kv[0]))),
            tuple(sorted(asks.items(), key=lambda kv: float(kv[0]))),
        )

    def diff(self, t: int, symbol: str, mid: int, skip_ids: int = 0) -> BinanceDepth:
        first = self.u[symbol] + 1 + skip_ids
        last = first + self.rng.randint(0, 3)
        self.u[symbol] = last
        bids, asks = self.books[symbol]
        out_b, out_a = [], []
        for _ in range(self.rng.randint(1, 5)):
            side_bid = self.rng.random() < 0.5
            off = self.rng.randint(1, 25)
            price = _px(mid - off if side_bid else mid + off)
            qty = "0.00000000" if self.rng.random() < 0.2 else self.qty()
            (out_b if side_bid else out_a).append((price, qty))
            book = bids if side_bid else asks
            if float(qty):
                book[price] = qty
            else:
                book.pop(price, None)
        return BinanceDepth(
            t, self.next_seq("binance"), symbol, first, last, t // 10**6, tuple(out_b), tuple(out_a)
        )

    def trade(self, t: int, symbol: str, mid: int) -> BinanceTrade:
        self.trade_id += 1
        return BinanceTrade(
            t,
            self.next_seq("binance"),
            symbol,
            self.trade_id,
            _px(mid),
            self.qty(),
            t // 1_000_000 - 3,
            t // 1_000_000 - 2,
            self.rng.random() < 0.5,
        )

    def kite(self, t: int, token: int, mid: int, mode: str = "full") -> KiteTick:
        r = self.rng
        bids = tuple((mid - 5 * i, r.randint(1, 40) * 75, r.randint(1, 9)) for i in range(1, 6))
        asks = tuple((mid + 5 * i, r.randint(1, 40) * 75, r.randint(1, 9)) for i in range(1, 6))
        full = mode == "full"
        return KiteTick(
            t,
            self.next_seq("kite"),
            token,
            mode,
            mid,
            r.randint(1, 10) * 75,
            mid - 3,
            r.randint(10_000, 99_999),
            r.randint(1, 99_999),
            r.randint(1, 99_999),
            mid - 100,
            mid + 150,
            mid - 200,
            mid - 50,
            t // NS - 1 if full else 0,
            r.randint(0, 10**6) if full else 0,
            0,
            0,
            t // NS if full else 0,
            bids if full else (),
            asks if full else (),
        )


def generate(
    seed: int = 7,
    seconds: int = 300,
    rate_hz: float = 40.0,
    start_ns: int = T0,
    restart_at_s: float | None = None,
    gap_at_s: float | None = None,
) -> list[Record]:
    """Records in write order: Binance BTCUSDT/ETHUSDT (REST snapshot, diffs, trades) and Kite
    full/quote/ltp ticks for a few NFO tokens and the NIFTY spot. Adjacent records of different
    venues are sometimes written out of receive order, as the daemon's queue does."""
    g = _Gen(seed)
    rng = g.rng
    mids = {"BTCUSDT": 6_700_000, "ETHUSDT": 350_000}
    kmids = {NIFTY_FUT: 2_450_000, NIFTY_CE: 12_000, BANK_FUT: 5_200_000}
    out: list[Record] = [g.status(start_ns, "system", StatusKind.STARTED)]
    t = start_ns + 1_000_000
    for sym, mid in mids.items():
        out.append(g.status(t, "binance", StatusKind.CONNECTED, sym))
        out.append(g.rest_snapshot(t + 500, sym, mid))
        t += 1_000_000
    end = start_ns + seconds * NS
    restarted = gap_done = False
    while t < end:
        t += int(rng.expovariate(rate_hz) * NS) + 1
        if restart_at_s is not None and not restarted and t >= start_ns + restart_at_s * NS:
            restarted = True
            out.append(g.status(t, "system", StatusKind.STOPPED))
            t += 3 * NS
            g.seq = {"kite": 0, "binance": 0, "system": 0}
            out.append(g.status(t, "system", StatusKind.STARTED))
            for sym, mid in mids.items():
                out.append(g.rest_snapshot(t + 100, sym, mid))
            continue
        if gap_at_s is not None and not gap_done and t >= start_ns + gap_at_s * NS:
            gap_done = True
            sym = "BTCUSDT"
            out.append(g.diff(t, sym, mids[sym], skip_ids=3))  # the diff that shows the gap
            out.append(g.status(t + 10, "binance", StatusKind.GAP, sym))
            out.append(g.rest_snapshot(t + 200_000_000, sym, mids[sym]))
            t += 200_000_001
            continue
        roll = rng.random()
        if roll < 0.45:
            sym = rng.choice(list(mids))
            mids[sym] += rng.randint(-2, 2)
            out.append(g.diff(t, sym, mids[sym]))
        elif roll < 0.55:
            sym = rng.choice(list(mids))
            out.append(g.trade(t, sym, mids[sym]))
        elif roll < 0.60:
            out.append(g.kite(t, NIFTY_SPOT, 2_448_000 + rng.randint(-500, 500), "ltp"))
        else:
            token = rng.choice(list(kmids))
            kmids[token] += 5 * rng.randint(-2, 2)
            mode = "full" if rng.random() < 0.85 else "quote"
            # A packet's ticks share a receive time.
            out.append(g.kite(t, token, kmids[token], mode))
            if rng.random() < 0.2:
                other = rng.choice(list(kmids))
                out.append(g.kite(t, other, kmids[other], "full"))
    # The queue interleaves venues: swap some adjacent pairs of different venues.
    for i in range(1, len(out) - 1):
        a, b = out[i], out[i + 1]
        if (
            type(a) is KiteTick
            and type(b) is not KiteTick
            and type(b) is not Status
            and rng.random() < 0.1
        ):
            out[i], out[i + 1] = b, a
    return out


def record_store(
    data_dir: Path,
    records: list[Record],
    interval_s: int = 60,
    batch: int = 64,
    segment_size: int = 64 * 1024,
    compression: bool = True,
) -> Session:
    """Write ``records`` as the daemon does: tick batches applied to a BookKeeper in write
    order, and at each ``interval_s`` boundary every valid book to the LOB WAL. A system
    ``started`` record starts a new StoreWriter (a daemon restart) with a new keeper."""
    config = WalOptions(
        segment_size=segment_size,
        compression=compression,
        fsync_policy="never",
    )
    session = Session()
    interval = interval_s * NS
    runs: list[list[Record]] = []
    for r in records:
        if type(r) is Status and r.venue == "system" and r.kind == StatusKind.STARTED:
            runs.append([])
        if not runs:
            runs.append([])
        runs[-1].append(r)
    for run in runs:
        keeper = BookKeeper()
        store = StoreWriter(data_dir, config)
        next_snap = (run[0].recv_ns // interval + 1) * interval
        pending: list[Record] = []

        def flush(store: StoreWriter = store, pending: list[Record] = pending) -> None:
            if pending:
                store.append_ticks(list(pending))
                pending.clear()

        for r in run:
            while r.recv_ns > next_snap:
                flush()
                snaps = keeper.snapshots(next_snap)
                if snaps:
                    store.append_lob(snaps)
                    session.snapshots.extend(snaps)
                next_snap += interval
            pending.append(r)
            keeper.apply(r)
            session.ticks.append(r)
            if len(pending) >= batch:
                flush()
        flush()
        store.close()
    return session


def store_without(tmp_path: Path, records: list[Record], index: int) -> Path:
    """A store whose tick WAL lacks ``records[index]`` while its book snapshots are those of
    the complete stream: a record lost on its way to the WAL."""
    full = tmp_path / f"full_{index}"
    data_dir = tmp_path / f"without_{index}"
    record_store(full, records)
    record_store(data_dir, records[:index] + records[index + 1 :])
    shutil.rmtree(data_dir / "lob")
    shutil.copytree(full / "lob", data_dir / "lob")
    return data_dir


def live_book_at(records: list[Record], key: str, at_ns: int) -> tuple[object, bool]:
    """The book a BookKeeper fed in write order held at ``at_ns`` (records received at or
    before it applied; a restart starts a new keeper, as the daemon does)."""
    keeper = BookKeeper()
    for r in records:
        if r.recv_ns > at_ns:
            if type(r) is Status and r.venue == "system":
                break
            continue
        if type(r) is Status and r.venue == "system" and r.kind == StatusKind.STARTED:
            keeper = BookKeeper()
            continue
        keeper.apply(r)
    return keeper.book(key), keeper.is_valid(key)


def reference_book_at(
    records: list[Record], key: str, at_ns: int
) -> tuple[tuple[list[tuple[float, float]], list[tuple[float, float]]] | None, bool]:
    """``key``'s book at ``at_ns`` (bids and asks best first) and whether it is in sync, by an
    independent oracle on plain dicts that shares nothing with shriven.book: Binance's
    documented local-book procedure (buffer diffs; a snapshot is used if it is not older than
    the first buffered diff; drop u <= lastUpdateId; the first applied diff straddles it; then
    each U is the previous u + 1, else the book is lost until the next snapshot; a gap marker
    loses it too), and for Kite the five levels of the latest full tick. A daemon start begins
    again from nothing."""
    venue, _, name = key.partition(":")
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    seen = False
    live = False
    last = 0
    first = False
    buffer: list[BinanceDepth] = []

    def apply(d: BinanceDepth) -> None:
        for side, levels in ((bids, d.bids), (asks, d.asks)):
            for p, q in levels:
                if float(q) == 0:
                    side.pop(float(p), None)
                else:
                    side[float(p)] = float(q)

    def on_diff(d: BinanceDepth) -> None:
        nonlocal live, last, first
        if not live:
            buffer.append(d)
            return
        if d.last_update_id <= last:
            return
        if d.first_update_id == last + 1 or (first and d.first_update_id <= last + 1):
            apply(d)
            last, first = d.last_update_id, False
            return
        live = False
        buffer[:] = [d]

    for r in records:
        if r.recv_ns > at_ns:
            if type(r) is Status and r.venue == "system":
                break
            continue
        t = type(r)
        if t is Status and r.venue == "system" and r.kind == StatusKind.STARTED:  # type: ignore[union-attr]
            bids, asks, seen, live, last, first, buffer = {}, {}, False, False, 0, False, []
        elif venue == "binance" and t is BinanceDepth and r.symbol == name:  # type: ignore[union-attr]
            seen = True
            on_diff(r)  # type: ignore[arg-type]
        elif venue == "binance" and t is BinanceDepthSnapshot and r.symbol == name:  # type: ignore[union-attr]
            seen = True
            snap_id = r.last_update_id  # type: ignore[union-attr]
            pending = [d for d in buffer if d.last_update_id > snap_id]
            if pending and pending[0].first_update_id > snap_id + 1:
                continue  # older than the buffered diffs: Binance says fetch another
            bids = {float(p): float(q) for p, q in r.bids}  # type: ignore[union-attr]
            asks = {float(p): float(q) for p, q in r.asks}  # type: ignore[union-attr]
            live, last, first = True, snap_id, True
            buffer.clear()
            for d in pending:
                on_diff(d)
        elif (
            venue == "binance"
            and t is Status
            and r.venue == "binance"  # type: ignore[union-attr]
            and r.kind == StatusKind.GAP  # type: ignore[union-attr]
            and r.instrument == name  # type: ignore[union-attr]
            and live
        ):
            live = False
            buffer.clear()
        elif venue == "kite" and t is KiteTick and str(r.instrument_token) == name:  # type: ignore[union-attr]
            if r.mode != "full" or r.instrument_token & 0xFF == 9:  # type: ignore[union-attr]
                continue
            div = kite_price_divisor(r.instrument_token)  # type: ignore[union-attr]
            bids = {p / div: float(q) for p, q, _o in r.bids if p and q}  # type: ignore[union-attr]
            asks = {p / div: float(q) for p, q, _o in r.asks if p and q}  # type: ignore[union-attr]
            seen = live = True
    if not seen:
        return None, False
    return (sorted(bids.items(), reverse=True), sorted(asks.items())), live

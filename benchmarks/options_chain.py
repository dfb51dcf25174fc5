"""Options analytics speed: the implied-volatility solver, IV + Greeks of a full chain, and the
one-minute chain series of a recorded day of two underlyings.

Figures (CPU time, time.process_time, one core):
- solver: implied_vol on 1,000,000 options of realistic chains (strikes within 5% of the
  forward, 2 to 60 days, a skewed smile, prices on the 0.05 tick), options per second; the peer
  is Jaeckel's "Let's be rational" (py_lets_be_rational, the tests' oracle) one option at a time
  on a sample of the same options, and the largest difference between the two on that sample;
- chain: IV from mid, bid, ask and last plus the Greeks for a full chain (two expiries, +-20
  strikes, calls and puts: 164 options) as the chain view computes them, chains per second;
- day: `replay_chain` every minute of a 09:15-15:30 day (375 instants) of NIFTY and NIFTY BANK
  (spot, two futures, two expiries of +-20 strikes each: 334 instruments) from a store with one
  full tick per instrument every STEP_S seconds (the argument), generated here from the
  simulator's surface through the real StoreWriter; seconds for the whole series of both
  underlyings, Parquet out.

Targets (issue 19): solver >= 1M options/s on one core. Usage:
python benchmarks/options_chain.py [step_seconds]
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from py_lets_be_rational import implied_volatility_from_a_transformed_rational_guess as lbr

from _cli import parser
from shriven.analytics import black76_price, greeks, implied_vol
from shriven.events import Status
from shriven.replay import replay_chain
from shriven.sim.chain_records import chain_instruments, chain_ticks
from shriven.universe.recorded import record_instruments
from shriven.wal import StoreWriter

NS = 1_000_000_000
RATE = 0.065
TODAY = date(2026, 11, 25)
DAY_START = 1_795_578_300 * NS  # 2026-11-25T09:15:00+05:30
DAY_S = 375 * 60
PEER_SAMPLE = 20_000


def realistic(n: int, seed: int = 2) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    t = rng.uniform(2 / 365, 60 / 365, n)
    f = 25_000 * np.exp(RATE * t)
    k = np.round(f * np.exp(rng.uniform(-0.05, 0.05, n)) / 50) * 50
    m = np.log(k / f)
    vol = 0.14 - 0.25 * m + 1.5 * m * m
    call = rng.random(n) < 0.5
    price = np.round(black76_price(f, k, t, vol, call, RATE) / 0.05) * 0.05
    return price, f, k, t, call


def solver() -> None:
    n = 1_000_000
    price, f, k, t, call = realistic(n)
    implied_vol(price[:1000], f[:1000], k[:1000], t[:1000], call[:1000], RATE)  # warm up
    best = math.inf
    for _ in range(3):
        t0 = time.process_time()
        iv = implied_vol(price, f, k, t, call, RATE)
        best = min(best, time.process_time() - t0)
    ours = n / best
    t0 = time.process_time()
    worst = 0.0
    for i in range(PEER_SAMPLE):
        undiscounted = float(price[i] * math.exp(RATE * t[i]))
        try:
            ref = lbr(undiscounted, float(f[i]), float(k[i]), float(t[i]), 1.0 if call[i] else -1.0)
        except Exception:  # below intrinsic for the oracle too
            continue
        if iv.reason[i] == 0:
            worst = max(worst, abs(ref - float(iv.vol[i])))
    peer = PEER_SAMPLE / (time.process_time() - t0)
    solved = int((iv.reason == 0).sum())
    print(f"solver: {ours:,.0f} options/s ({solved:,} of {n:,} solved; the rest at or below "
          f"intrinsic on the tick grid)")  # fmt: skip
    print(f"  peer py_lets_be_rational: {peer:,.0f} options/s; ratio {ours / peer:.1f}x; "
          f"largest difference {worst:.1e} on {PEER_SAMPLE:,}")  # fmt: skip


def chain() -> None:
    strikes = 25_000 + 50 * np.arange(-20, 21, dtype=np.float64)
    legs_k = np.concatenate([strikes, strikes, strikes, strikes])
    calls = np.concatenate([np.ones(41, bool), np.zeros(41, bool)] * 2)
    t = np.concatenate([np.full(82, 6 / 365), np.full(82, 34 / 365)])
    f = 25_000 * np.exp(RATE * t)
    m = np.log(legs_k / f)
    mid = black76_price(f, legs_k, t, 0.14 - 0.25 * m + 1.5 * m * m, calls, RATE)
    quotes = np.stack([mid, mid - 0.025, mid + 0.025, mid])
    runs = 2_000
    t0 = time.process_time()
    for _ in range(runs):
        iv = implied_vol(quotes, f, legs_k, t, calls, RATE)
        greeks(f, legs_k, t, iv.vol[0], calls, RATE)
    dt = time.process_time() - t0
    print(f"chain: {runs / dt:,.0f} full chains/s (164 options, IV from 4 prices + Greeks: "
          f"{164 * runs / dt:,.0f} options/s)")  # fmt: skip


def day(tmp: Path, step_s: float) -> None:
    data = tmp / "market"
    data.mkdir()
    rows = chain_instruments(TODAY, ("NIFTY", "BANKNIFTY"), strikes=20)
    record_instruments(data, rows)
    t0 = time.perf_counter()
    store = StoreWriter(data)
    pending: list = [Status(DAY_START - NS, 1, "system", "started", "", "{}")]  # type: ignore[type-arg]
    n = 0
    for tick in chain_ticks(rows, DAY_START, DAY_START + DAY_S * NS, int(step_s * NS)):
        pending.append(tick)
        if len(pending) >= 5_000:
            store.append_ticks(pending)
            n += len(pending)
            pending = []
    store.append_ticks(pending)
    n += len(pending)
    store.close()
    written = time.perf_counter() - t0
    print(f"day: {len(rows)} instruments, {n:,} ticks (one per instrument every {step_s:g} s) "
          f"written in {written:.1f} s")  # fmt: skip
    zone = ZoneInfo("Asia/Kolkata")
    total_cpu = total_wall = 0.0
    legs = 0
    for name in ("NIFTY 50", "NIFTY BANK"):
        c0, w0 = time.process_time(), time.perf_counter()
        result = replay_chain(
            data, name, tmp / f"{name}.parquet", zone, start_ns=DAY_START,
            end_ns=DAY_START + DAY_S * NS, every_ns=60 * NS, expiry="all", rate=RATE,
            fmt="parquet",
        )  # fmt: skip
        total_cpu += time.process_time() - c0
        total_wall += time.perf_counter() - w0
        legs += result.legs
    print(f"  one-minute chain series of both underlyings: {total_cpu:.1f} s CPU, "
          f"{total_wall:.1f} s wall ({legs:,} rows of 375 instants)")  # fmt: skip


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument(
        "step_s", nargs="?", type=float, default=20.0,
        help="seconds between ticks of each instrument in the day's store",
    )  # fmt: skip
    step_s = ap.parse_args().step_s
    solver()
    chain()
    tmp = Path(tempfile.mkdtemp(prefix="shriven-chain-bench-"))
    try:
        day(tmp, step_s)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Deterministic, realistic records for benchmarks, the demo and tests (not venue data).

Kite full-mode ticks with 5+5 depth around a NIFTY-like price and Binance BTCUSDT depth diffs with a
few levels and trades, interleaved the way a recorder receives them, ``recv_ns`` non-decreasing.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from shriven.events import BinanceDepth, BinanceTrade, KiteTick, Record, Status

NIFTY_FUT = 13_368_066  # a NFO token (segment 2): prices in paise
TOKENS = tuple(NIFTY_FUT + 256 * k for k in range(40))


def _kite_tick(rng: random.Random, recv_ns: int, seq: int) -> KiteTick:
    token = rng.choice(TOKENS)
    ltp = 2_450_000 + rng.randint(-2_000, 2_000) * 5
    second = recv_ns // 1_000_000_000
    return KiteTick(
        recv_ns,
        seq,
        token,
        "full",
        ltp,
        rng.randint(1, 20) * 25,
        ltp - rng.randint(0, 400),
        rng.randint(1_000_000, 90_000_000),
        rng.randint(100_000, 5_000_000),
        rng.randint(100_000, 5_000_000),
        ltp - 15_000,
        ltp + 20_000,
        ltp - 30_000,
        ltp - 5_000,
        second - rng.randint(0, 2),
        rng.randint(1_000_000, 20_000_000),
        20_000_000,
        900_000,
        second,
        tuple((ltp - 5 * k, rng.randint(1, 80) * 25, rng.randint(1, 30)) for k in range(5)),
        tuple((ltp + 5 * (k + 1), rng.randint(1, 80) * 25, rng.randint(1, 30)) for k in range(5)),
    )


def _depth(rng: random.Random, recv_ns: int, seq: int, update_id: int) -> BinanceDepth:
    mid = 6_168_599 + rng.randint(-500, 500)

    def level(cents: int) -> tuple[str, str]:
        qty = "0.00000000" if rng.random() < 0.2 else f"{rng.randint(1, 300_000_000) / 1e8:.8f}"
        return (f"{cents // 100}.{cents % 100:02d}000000", qty)

    bids = tuple(level(mid - k) for k in range(rng.randint(1, 4)))
    asks = tuple(level(mid + 1 + k) for k in range(rng.randint(1, 4)))
    last = update_id + rng.randint(1, 8)
    return BinanceDepth(recv_ns, seq, "BTCUSDT", update_id, last, recv_ns // 1_000_000, bids, asks)


def sample_records(
    count: int, *, seed: int = 7, start_ns: int = 1_767_225_600 * 10**9
) -> Iterator[Record]:
    """``count`` records: ~60% Kite full ticks, ~30% Binance depth diffs, ~10% trades, and a
    Status marker first. ``recv_ns`` advances 1-200 µs per record."""
    rng = random.Random(seed)
    recv_ns = start_ns
    kite_seq = binance_seq = 0
    update_id = 40_000_000_000
    trade_id = 3_000_000_000
    if count > 0:
        yield Status(recv_ns, 0, "system", "started", "", "sample")
    for _ in range(count - 1):
        recv_ns += rng.randint(1_000, 200_000)
        roll = rng.random()
        if roll < 0.6:
            kite_seq += 1
            yield _kite_tick(rng, recv_ns, kite_seq)
        elif roll < 0.9:
            binance_seq += 1
            rec = _depth(rng, recv_ns, binance_seq, update_id + 1)
            update_id = rec.last_update_id
            yield rec
        else:
            binance_seq += 1
            trade_id += 1
            price = 6_168_599 + rng.randint(-500, 500)
            yield BinanceTrade(
                recv_ns,
                binance_seq,
                "BTCUSDT",
                trade_id,
                f"{price // 100}.{price % 100:02d}000000",
                f"{rng.randint(1, 50_000_000) / 1e8:.8f}",
                recv_ns // 1_000_000 - 2,
                recv_ns // 1_000_000 - 1,
                rng.random() < 0.5,
            )

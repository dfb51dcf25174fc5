"""Kite ticker parsing speed: full-mode packets per second, ours against kiteconnect's parser.

Messages of 100 full packets (184 bytes each, varied prices and depth), parsed in a loop on one
core for a fixed time by shriven.feeds.kite.protocol.parse_message and by
kiteconnect.KiteTicker._parse_binary in the same run. Targets: >= 500k packets/s, >= 5x.
With shriven._kitetick built, parse_message returns full ticks held as their packets (fields
decoded on first read): also shown with every tick's fields read, and the pure-Python reference.

    python benchmarks/kite_parse.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from kiteconnect import KiteTicker

from shriven.events import KiteTick, SeqCounter, _kitetick
from shriven.feeds.base import FeedStats
from shriven.feeds.kite.protocol import (
    encode_message,
    encode_packet,
    parse_message,
    py_parse_message,
)

PACKETS_PER_MESSAGE = 100
TARGET_RATE = 500_000
TARGET_RATIO = 5.0


def make_messages(count: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    messages = []
    for _ in range(count):
        packets = []
        for _ in range(PACKETS_PER_MESSAGE):
            token = (rng.randrange(1, 2**20) << 8) | rng.choice((1, 2, 3, 7))
            ltp = rng.randrange(1_000, 5_000_000)
            bids = tuple(
                (ltp - 5 * (i + 1), rng.randrange(1, 5000), rng.randrange(1, 50)) for i in range(5)
            )
            asks = tuple(
                (ltp + 5 * (i + 1), rng.randrange(1, 5000), rng.randrange(1, 50)) for i in range(5)
            )
            t = KiteTick(0, 0, token, "full", ltp)
            t.last_traded_quantity = rng.randrange(1, 100)
            t.average_traded_price = t.open = t.close = ltp
            t.high, t.low = ltp + 50, ltp - 50
            t.volume_traded = rng.randrange(10**7)
            t.total_buy_quantity, t.total_sell_quantity = rng.randrange(10**6), rng.randrange(10**6)
            t.last_trade_time, t.exchange_timestamp = 1_700_000_000, 1_700_000_001
            t.oi = rng.randrange(10**6)
            t.bids, t.asks = bids, asks
            packets.append(encode_packet(t))
        messages.append(encode_message(packets))
    return messages


def rate(parse: Callable[[bytes], object], messages: list[bytes], seconds: float) -> float:
    """Packets per CPU second over whole passes of ``messages`` taking at least ``seconds`` of CPU
    (CPU time, which a shared machine distorts least)."""
    for m in messages[:10]:  # warm up
        parse(m)
    packets = 0
    start = time.process_time()
    while True:
        for m in messages:
            parse(m)
        packets += len(messages) * PACKETS_PER_MESSAGE
        elapsed = time.process_time() - start
        if elapsed >= seconds:
            return packets / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="time per parser (default 5)")
    args = ap.parse_args()
    messages = make_messages(200)
    seq, stats = SeqCounter(), FeedStats("kite")
    now = time.time_ns()

    def ours(m: bytes) -> object:
        return parse_message(m, now, seq, stats)

    ticker = KiteTicker("api_key", "access_token")
    assert len(ours(messages[0])) == len(ticker._parse_binary(messages[0])) == PACKETS_PER_MESSAGE

    def ours_decoded(m: bytes) -> object:
        ticks = parse_message(m, now, seq, stats)
        for t in ticks:
            t.bids  # noqa: B018  (a held tick decodes every field on first read)
        return ticks

    def ours_python(m: bytes) -> object:
        return py_parse_message(m, now, seq, stats)

    theirs_rate = rate(ticker._parse_binary, messages, args.seconds)
    ours_rate = rate(ours, messages, args.seconds)
    decoded_rate = rate(ours_decoded, messages, args.seconds)
    python_rate = rate(ours_python, messages, args.seconds)
    ratio = ours_rate / theirs_rate
    assert stats.parse_errors == 0
    print(f"shriven._kitetick built: {_kitetick is not None}")
    print(
        f"kite full packets per CPU second  shriven: {ours_rate:,.0f}  "
        f"kiteconnect: {theirs_rate:,.0f}"
    )
    print(
        f"  shriven, every field read: {decoded_rate:,.0f} ({decoded_rate / theirs_rate:.1f}x); "
        f"pure-Python reference: {python_rate:,.0f} ({python_rate / theirs_rate:.1f}x)"
    )
    print(f"ratio: {ratio:.1f}x  (targets: >= {TARGET_RATE:,} packets/s, >= {TARGET_RATIO:.0f}x)")
    ok = ours_rate >= TARGET_RATE and ratio >= TARGET_RATIO
    print("targets met" if ok else "TARGETS MISSED")


if __name__ == "__main__":
    main()

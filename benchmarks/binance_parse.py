"""Binance message parsing with the schema: µs per message, msgspec Structs vs a hand validator.

Workload: the real BTCUSDT spot diff and trade streams from tests/fixtures (3,451 diffs of a few
to hundreds of levels, 1,000 trades), each message as the websocket delivers it (text). The same
messages run, in the same process, through:

  ours (msgspec)       shriven.feeds.binance.parse.parse_message: msgspec typed decode (types,
                       int64 range, trade decimals), level arrays checked as raw JSON by one
                       regex then decoded, stream/symbol checks, the record. (With msgspec's
                       per-string pattern on every level instead: 73 µs a diff.)
  hand (json)          json.loads (RecursionError caught) plus a hand-written validator applying
                       the same rules in Python, then the same record
  old (json, no check) json.loads and the record built with int()/str() and no checks (the
                       parser before the schema: the floor, and what it let through)

Times are CPU time of this process (time.process_time_ns); contestants take turns per repeat.

Run:  PYTHONPATH=src python benchmarks/binance_parse.py [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from shriven.events import BinanceDepth, BinanceTrade
from shriven.feeds.binance.parse import INT64_MAX, BinanceMessageError, parse_message

FIXTURES = Path(__file__).resolve().parent.parent / "tests/fixtures/binance"
_DEC = re.compile(r"^[0-9]{1,20}(\.[0-9]{1,20})?$").fullmatch
SYMBOLS = frozenset({"BTCUSDT"})


def _int(v: object) -> int:
    if type(v) is not int or not 0 <= v <= INT64_MAX:  # type: ignore[operator]
        raise ValueError("bad integer")
    return v  # type: ignore[return-value]


def _dec(v: object) -> str:
    if type(v) is not str or _DEC(v) is None:
        raise ValueError("bad decimal")
    return v


def _levels(v: object) -> tuple[tuple[str, str], ...]:
    if type(v) is not list:
        raise ValueError("bad levels")
    out = []
    for lvl in v:
        if type(lvl) is not list or len(lvl) != 2:
            raise ValueError("bad level")
        out.append((_dec(lvl[0]), _dec(lvl[1])))
    return tuple(out)


def hand_parse(raw: str, recv_ns: int) -> BinanceDepth | BinanceTrade:
    try:
        msg = json.loads(raw)
    except (ValueError, RecursionError):
        raise BinanceMessageError("malformed_json", "") from None
    try:
        stream, d = msg["stream"], msg["data"]
        s = d["s"]
        if type(s) is not str or s not in SYMBOLS:
            raise ValueError("symbol")
        e = d["e"]
        if e == "depthUpdate":
            if not (stream == s.lower() + "@depth" or stream.startswith(s.lower() + "@depth@")):
                raise ValueError("stream")
            return BinanceDepth(
                recv_ns,
                0,
                s,
                _int(d["U"]),
                _int(d["u"]),
                _int(d["E"]),
                _levels(d["b"]),
                _levels(d["a"]),
            )
        if e == "trade":
            if stream != s.lower() + "@trade" or type(d["m"]) is not bool:
                raise ValueError("stream")
            return BinanceTrade(
                recv_ns,
                0,
                s,
                _int(d["t"]),
                _dec(d["p"]),
                _dec(d["q"]),
                _int(d["T"]),
                _int(d["E"]),
                d["m"],
            )
    except (KeyError, TypeError, ValueError):
        raise BinanceMessageError("bad_depthUpdate", "") from None
    raise BinanceMessageError("unexpected_event", "")


def old_parse(raw: str, recv_ns: int) -> BinanceDepth | BinanceTrade:
    d = json.loads(raw)["data"]
    if d["e"] == "depthUpdate":
        lv = lambda x: tuple((str(p), str(q)) for p, q in x)  # noqa: E731
        return BinanceDepth(
            recv_ns, 0, d["s"], int(d["U"]), int(d["u"]), int(d["E"]), lv(d["b"]), lv(d["a"])
        )
    return BinanceTrade(
        recv_ns,
        0,
        d["s"],
        int(d["t"]),
        str(d["p"]),
        str(d["q"]),
        int(d["T"]),
        int(d["E"]),
        bool(d["m"]),
    )


def ours(raw: str, recv_ns: int) -> object:
    return parse_message(raw, recv_ns, 0, SYMBOLS)


def run(fn: Callable[[str, int], object], msgs: list[str]) -> float:
    t0 = time.process_time_ns()
    for m in msgs:
        fn(m, 0)
    return (time.process_time_ns() - t0) / 1000 / len(msgs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    base = FIXTURES / "hftbacktest_spot_btcusdt_20240808"
    diffs = (base / "depth_diff_BTCUSDT.jsonl").read_text().splitlines()
    trades = (base / "trade_BTCUSDT.jsonl").read_text().splitlines()
    for m in diffs + trades:  # the three agree on every genuine message
        assert ours(m, 0) == hand_parse(m, 0) == old_parse(m, 0)
    contestants = {
        "ours (msgspec)": ours,
        "hand (json)": hand_parse,
        "old (json, no check)": old_parse,
    }
    for name, msgs in (("diffs", diffs), ("trades", trades)):
        times: dict[str, list[float]] = {k: [] for k in contestants}
        for _ in range(args.repeats):
            for k, fn in contestants.items():
                times[k].append(run(fn, msgs))
        best = {k: statistics.median(v) for k, v in times.items()}
        print(f"{name} ({len(msgs)} messages), median of {args.repeats}:")
        for k, v in best.items():
            ratio = v / best["ours (msgspec)"]
            print(f"  {k:22s} {v:8.2f} µs/message  ({ratio:.2f}x ours)")


if __name__ == "__main__":
    main()

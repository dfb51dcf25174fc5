"""Soak: does the recorder's memory stay flat while it records? Target: RSS growth after warm-up
under 0.2 MB per million records written.

Runs the real daemon, ``shriven run --sim --sim-rate RATE`` (loopback Kite and Binance
simulators in the same process, as a user runs it), for ``--seconds``; every ``--every`` seconds
reads the process's RSS (/proc/PID/status VmRSS), the records written and the records in flight
(the queue's high water) from /health. The growth is the least-squares slope of RSS against
records written.

Warm-up ends ``--warmup`` seconds after the first record is written (allocator arenas, book
depth, instruments, caches filling) and once the records in flight have reached their peak.
Python's allocator keeps an arena while anything in it lives, so RSS steps up (1 to 2 MB) each
time a burst queues more records than any burst before (the backlog after a stall of the loop,
the disk or the machine), and stays there: that is a high water, bounded by what can be in
flight (the queue's soft limit, ``queue_soft_limit``, past which feeds wait for the writer,
and the batch being written), not memory kept per record. A run's slope after a fixed warm-up
depended on when its largest burst came (one 2 MB step at 110 s: 1.81 MB per million). Both
figures are printed: the slope after the fixed warm-up, with the peak's steps in it, and the
slope after the peak, which is the target's; and the slope in each third of the run after the
warm-up: an allocator still reaching its high water shows slopes falling from one third to the
next, memory kept per record the same slope in each. The load average is printed too: on a
shared machine the records/s, and so the weight of each step per million, depend on it.

    .venv/bin/python benchmarks/soak_rss.py [--seconds 540] [--rate 10000] [--warmup 120]

The defaults are 540 s and a 120 s warm-up because, on the quiet machine, RSS was still settling
for about two minutes after the first record (a 300 s run with a 60 s warm-up: 1.59, 0.57, then
0.05 MB per million by thirds), so a 60 s warm-up measured the allocator filling in, not growth.

Linux only (reads /proc). Prints one line per sample and the result lines.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

TARGET_MB_PER_MILLION = 0.2
PEAK_REACHED = 0.95


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def health(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
            doc = json.load(resp)
    except urllib.error.HTTPError as exc:  # 503 still carries the report
        doc = json.load(exc)
    except OSError:
        return None
    return doc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def slope(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=540.0, help="how long to record")
    ap.add_argument("--rate", type=float, default=10_000.0, help="Kite simulator ticks/s")
    ap.add_argument("--warmup", type=float, default=120.0, help="seconds of samples to drop")
    ap.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    args = ap.parse_args()
    if args.warmup + 4 * args.every >= args.seconds:
        ap.error("--seconds must leave at least four samples after --warmup")

    with tempfile.TemporaryDirectory(prefix="shriven-soak-") as tmp:
        home = Path(tmp)
        (home / "shriven.toml").write_text("")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ZERODHA_", "SHRIVEN_"))}
        env.update(
            SHRIVEN_CACHE_DIR=str(home / "cache"),
            SHRIVEN_CONFIG_FILE=str(home / "shriven.toml"),
            # book snapshot rounds every 10 s rather than each minute: every sample window
            # after warm-up holds the same share of them
            SHRIVEN_PIPELINE__SNAPSHOT_INTERVAL_SECS="10",
        )
        port = free_port()
        cmd = [sys.executable, "-m", "shriven", "run", "--sim", "--quiet"]
        cmd += ["--sim-rate", f"{args.rate:g}", "--health-port", str(port)]
        cmd += ["--data-dir", str(home / "data"), "--duration", f"{args.seconds:g}"]
        log = open(os.environ.get("SOAK_LOG", home / "run.log"), "wb")  # noqa: SIM115 - closed below, after the process
        load_before = os.getloadavg()
        proc = subprocess.Popen(cmd, cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT)
        started = time.monotonic()
        # (seconds, records, RSS MB, records in flight at their peak so far)
        samples: list[tuple[float, int, float, int]] = []
        try:
            while proc.poll() is None:
                time.sleep(args.every)
                t = time.monotonic() - started
                doc = health(port)
                if doc is None or proc.poll() is not None:
                    continue
                n, books = int(doc["wal"]["records_written"]), doc["books"]["count"]
                high = doc["queue"]["high_water"]
                paced = doc["queue"].get("paced", 0)
                mb = rss_mb(proc.pid)
                samples.append((t, n, mb, high))
                print(
                    f"{t:6.1f} s  {n:>11,} records  {books:>5} books  in flight at peak "
                    f"{high:>6,}  paced {paced:>7,}  RSS {mb:7.1f} MB",
                    flush=True,
                )
                if t > args.seconds - args.every:
                    break
            proc.wait(timeout=args.seconds + 120)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
        if proc.returncode != 0:
            print((home / "run.log").read_text()[-3000:], file=sys.stderr)
            print(f"shriven run exited {proc.returncode}", file=sys.stderr)
            return 1

    # the peak in flight, and so the slope, depend on how much CPU the run got
    load_after = os.getloadavg()
    print(
        f"load average (1, 5, 15 min) at the start {', '.join(f'{x:.2f}' for x in load_before)}, "
        f"at the end {', '.join(f'{x:.2f}' for x in load_after)} ({os.cpu_count()} CPUs)"
    )
    # warm-up counts from the first record written: start-up (imports, logins, instruments)
    # took 60 s of a run on a loaded machine
    first = next((s[0] for s in samples if s[1] > 0), float("inf"))
    kept = [s for s in samples if s[0] - first >= args.warmup]
    if len(kept) < 4:
        print("too few samples after warm-up; raise --seconds", file=sys.stderr)
        return 1
    print(growth_line(f"after {args.warmup:g} s warm-up from the first record", kept))
    peak = kept[-1][3]
    # the first sample within 5% of the peak: a burst a few records above the one before it
    # does not need another arena
    settled = kept[next(i for i, s in enumerate(kept) if s[3] >= PEAK_REACHED * peak) :]
    print(
        f"records in flight at their peak: {kept[0][3]:,} at {kept[0][0]:.0f} s, {peak:,} at the "
        f"end, within 5% of it from {settled[0][0]:.0f} s on"
    )
    if len(settled) < 4:
        print(
            "too few samples after the records in flight reached their peak; raise --seconds",
            file=sys.stderr,
        )
        return 1
    # a high water the allocator is still reaching shows as slopes falling window by window;
    # memory kept per record, as the same slope in every window
    window = (kept[-1][0] - kept[0][0]) / 3
    for i in range(3):
        lo, hi = kept[0][0] + i * window, kept[0][0] + (i + 1) * window
        part = [s for s in kept if lo <= s[0] <= hi]
        if len(part) >= 3:
            print(growth_line(f"in {lo:.0f}-{hi:.0f} s", part))
    growth = slope([s[1] / 1e6 for s in settled], [s[2] for s in settled])
    verdict = "meets" if growth < TARGET_MB_PER_MILLION else "MISSES"
    print(
        growth_line("after the peak", settled)
        + f"; {verdict} the target of < {TARGET_MB_PER_MILLION} MB"
    )
    return 0


def growth_line(label: str, kept: list[tuple[float, int, float, int]]) -> str:
    growth = slope([s[1] / 1e6 for s in kept], [s[2] for s in kept])
    span = kept[-1][1] - kept[0][1]
    rate = span / (kept[-1][0] - kept[0][0])
    return (
        f"RSS growth {label}: {growth:.3f} MB per million records ({kept[0][2]:.1f} -> "
        f"{kept[-1][2]:.1f} MB over {span:,} records, {kept[-1][0] - kept[0][0]:.0f} s, "
        f"{rate:,.0f} records/s)"
    )


if __name__ == "__main__":
    raise SystemExit(main())

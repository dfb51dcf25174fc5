"""The monitor's screen as plain text lines, at most 80 columns and 24 rows (readable over SSH).
Pure: the TUI only shows these lines. Numbers are /health's, formatted like the console status
line (``shriven.sizes.human_bytes``, ``1,204/s``)."""

from __future__ import annotations

import time
from datetime import datetime

from shriven.dashboard.model import RecorderView
from shriven.sizes import human_bytes

WIDTH = 80
HEIGHT = 24
_SPARK = " ▁▂▃▄▅▆▇█"
_SPARK_WIDTH = 24
_KITE_ROWS = 3
_PROBLEM_ROWS = 3


def sparkline(values: list[float], width: int = _SPARK_WIDTH) -> str:
    """The last ``width`` values as block characters scaled to their maximum."""
    tail = values[-width:]
    top = max(tail, default=0.0)
    if top <= 0:
        return "▁" * len(tail) + " " * (width - len(tail))
    chars = [_SPARK[max(1, round(v / top * (len(_SPARK) - 1)))] for v in tail]
    return "".join(chars) + " " * (width - len(tail))


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _ago(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _clock(epoch: object) -> str:
    if not isinstance(epoch, int | float):
        return "-"
    return datetime.fromtimestamp(epoch).strftime("%H:%M:%S")


def feed_state(f: dict) -> str:
    if f.get("held"):
        return "held"
    if not f.get("connected"):
        return "DOWN"
    return "STALE" if f.get("stale") else "up"


def render(
    view: RecorderView, index: int = 0, total: int = 1, now: float | None = None
) -> list[str]:
    """The screen for ``view`` (recorder ``index`` of ``total``), ``now`` in monotonic s."""
    now = time.monotonic() if now is None else now
    lines: list[str] = []
    which = f"[{index + 1}/{total}] " if total > 1 else ""
    keys = "q quit  tab next" if total > 1 else "q quit"
    if view.last is None:
        state = f"NOT ANSWERING: {view.error}" if view.error else "connecting..."
        lines.append(_fit(f"shriven monitor {which}{view.url}  {keys}"))
        lines.append(_fit(state))
        return _pad(lines)
    h = view.last.health
    status = str(h.get("status", "?"))
    if view.error:
        since = now - (view.failed_since or now)
        seen = now - view.last.at
        status = f"NOT ANSWERING for {_ago(since)} ({view.error}); last seen {_ago(seen)} ago"
    else:
        status = f"{status}  up {_ago(float(h.get('uptime_s', 0)))}"
    lines.append(_fit(f"shriven monitor {which}{view.url}  {keys}"))
    lines.append(_fit(status))
    lines.append(
        _fit(f"{'feed':<8} {'state':<5} {'msg/s':>7} {'rec/s':>7} {'last minutes':<24} "
             f"{'reconn':>6} {'gaps':>5} {'errors':>6}")
    )  # fmt: skip
    for venue, f in h.get("feeds", {}).items():
        rates = list(view.rates.get(venue, []))
        msg = f"{rates[-1]:,.0f}" if rates else "-"
        rec = view.record_rates.get(venue)
        lines.append(
            _fit(
                f"{venue:<8} {feed_state(f):<5} {msg:>7} "
                f"{'-' if rec is None else f'{rec:,.0f}':>7} {sparkline(rates)} "
                f"{f['reconnects']:>6} {f['gaps']:>5} {f['parse_errors']:>6}"
            )
        )
    q = h.get("queue", {})
    depth, cap = int(q.get("depth", 0)), int(q.get("capacity", 1)) or 1
    bar_w = 20
    filled = min(bar_w, round(depth / cap * bar_w))
    lines.append(
        _fit(
            f"queue {depth}/{cap} [{'#' * filled}{'.' * (bar_w - filled)}] "
            f"high water {q.get('high_water', 0):,}  dropped {q.get('dropped', 0):,}"
        )
    )
    w = h.get("wal", {})
    lines.append(
        _fit(
            f"written {w.get('records_written', 0):,} ({human_bytes(w.get('bytes_written', 0))})"
            f"  {view.wal_bytes_per_s / 1e6:.2f} MB/s"
        )
    )
    lines.append(
        _fit(
            f"fsync p99 {_ms(view.p99('shriven_wal_fsync_seconds'))}  receive to durable p99 "
            f"{_ms(view.p99('shriven_receive_to_durable_seconds'))}"
        )
    )
    b = h.get("books", {})
    lines.append(
        _fit(
            f"books {b.get('count', 0)}  crossed now {b.get('crossed_now', 0)}  "
            f"disk {human_bytes(w.get('disk_free_bytes', 0))} free"
        )
    )
    universe = h.get("kite_universe") or {}
    if universe:
        lines.append("kite universe")
        for symbol, u in list(universe.items())[:_KITE_ROWS]:
            lines.append(
                _fit(
                    f" {symbol[:12]:<12} spot {u.get('spot', 0):,.2f} ATM {u.get('atm', 0):g} "
                    f"strikes {u.get('strikes', 0)} re-centre {_clock(u.get('last_recentre'))} "
                    f"rollover {_clock(u.get('last_rollover'))}"
                )
            )
    problems = list(h.get("problems", []))
    lines.append("problems" + ("" if problems else ": none"))
    for p in problems[:_PROBLEM_ROWS]:
        lines.append(_fit(f" {p}"))
    if len(problems) > _PROBLEM_ROWS:
        lines.append(f" ... and {len(problems) - _PROBLEM_ROWS} more")
    return _pad(lines)


def _fit(line: str) -> str:
    return line if len(line) <= WIDTH else line[: WIDTH - 1] + "…"


def _pad(lines: list[str]) -> list[str]:
    return lines[:HEIGHT]

"""The live parity watch follows a Kite feed held to SHRIVEN_KITE_WINDOW: inside the window the
recorder (the real pipeline against the Kite simulators on loopback) marks parity violations in
the WAL as the always-on feed does, and they are the ones `replay arb` finds afterwards."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.analytics.test_basis_tap import live_marks

from shriven.app.parity_tap import PARITY_KIND
from shriven.app.simulators import Simulators
from shriven.app.startup import add_windowed_kite, wal_options
from shriven.config import Settings
from shriven.pipeline.daemon import Pipeline
from shriven.replay.arb import replay_arb
from shriven.replay.times import format_ns

IST = ZoneInfo("Asia/Kolkata")
# A Wednesday that is an NSE trading day, inside the window below
INSIDE = datetime(2026, 12, 2, 10, 0, tzinfo=IST).timestamp()


async def test_the_live_parity_watch_follows_a_kite_feed_held_to_its_window(
    tmp_path: Path,
) -> None:
    base = Settings(
        _env_file=None,  # type: ignore[call-arg]
        cache_dir=tmp_path / "cache",
        kite_window="09:15-15:30",
        # the simulator's legs tick at different instants: at 0 rupees the few-paise gaps a
        # moving spot leaves between them are violations
        analytics_parity_threshold=0.0,
        pipeline={  # type: ignore[arg-type]
            "data_dir": str(tmp_path / "market"),
            "spot_symbols": ["NIFTY 50"],
            "option_strike_range": 3,
        },
    )
    sims = Simulators(seed=5)
    settings = await sims.start(base, ("kite",), kite_ticks_per_second=2_000.0)
    try:
        cfg = settings.pipeline
        pipeline = Pipeline(cfg, wal=wal_options(cfg), health_port=None, quiet=True)
        add_windowed_kite(pipeline, settings, {}, clock=lambda: INSIDE)
        assert await pipeline.run(3.0) == 0
    finally:
        await sims.stop()
    live = live_marks(cfg.data_dir, PARITY_KIND)
    assert live, "no violation marked live inside the window"
    out = io.StringIO()
    replay_arb(cfg.data_dir, out, IST, fmt="jsonl", threshold=0.0, cache_dir=settings.cache_dir)
    replayed = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(d["state"], d["strike"], format_ns(d["tick_ns"], IST)) for d in live] == [
        (r["event"], r["strike"], r["time"]) for r in replayed[: len(live)]
    ]

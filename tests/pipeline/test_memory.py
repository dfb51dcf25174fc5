"""What `shriven run` keeps in memory does not grow with the records it writes (the soak figure
is benchmarks/soak_rss.py)."""

from __future__ import annotations

import platform

import pytest

from shriven.app.simulators import Simulators
from shriven.config import load_settings
from shriven.pipeline.memory import fix_mmap_threshold


async def test_run_sim_keeps_a_bounded_binance_ledger_and_diff_history(tmp_path, monkeypatch):
    (tmp_path / "shriven.toml").write_text("")
    monkeypatch.setenv("SHRIVEN_CONFIG_FILE", str(tmp_path / "shriven.toml"))
    sims = Simulators()
    await sims.start(load_settings(cache_dir=tmp_path), ["binance"])
    try:
        assert sims.binance is not None
        for _ in range(5_000):  # about eight minutes of the simulator's events
            sims.binance.step()
        assert all(len(book.history) <= 1_024 for book in sims.binance.books.values())
        assert sims.binance.ledger.maxlen is not None and sims.binance.ledger.maxlen <= 256
    finally:
        await sims.stop()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_the_mmap_threshold_is_pinned_unless_the_user_chose_one(monkeypatch):
    assert fix_mmap_threshold() is True
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert fix_mmap_threshold() is False

"""Fixtures shared by the replay CLI tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from shriven.cli.app import settings


@pytest.fixture()
def isolated_cli_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings from nothing but the test: its own cache, the market zone, no settings file."""
    monkeypatch.setenv("SHRIVEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SHRIVEN_MARKET_TZ", "Asia/Kolkata")
    monkeypatch.setenv("SHRIVEN_CONFIG_FILE", os.devnull)
    settings.cache_clear()
    yield
    settings.cache_clear()
    structlog.reset_defaults()  # the CLI bound logging to CliRunner's stderr, now closed

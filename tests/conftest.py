"""Shared fixtures: paths to the recorded venue data in tests/fixtures (see each PROVENANCE.md)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("SHRIVEN_FIXTURES", REPO / "tests" / "fixtures"))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"recorded fixtures not found at {FIXTURES} (tests/fixtures in the repo)")
    return FIXTURES


@pytest.fixture(scope="session")
def kite_fixtures(fixtures_dir: Path) -> Path:
    return fixtures_dir / "kite"


@pytest.fixture(scope="session")
def binance_fixtures(fixtures_dir: Path) -> Path:
    return fixtures_dir / "binance"


@pytest.fixture(autouse=True)
def _no_logging_into_closed_streams() -> Iterator[None]:
    """CLI tests configure logging onto CliRunner's stderr, closed once the command returns;
    later library logging (aiohttp, asyncio) into it printed 'I/O operation on closed file'
    tracebacks all over a failing test's report. Drop such handlers after each test."""
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(getattr(handler, "stream", None), "closed", False):
            root.removeHandler(handler)

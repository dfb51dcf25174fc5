"""Shared fixtures: paths to the recorded venue data in ../shared/fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("SHRIVEN_FIXTURES", REPO.parent / "shared" / "fixtures"))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"recorded fixtures not found at {FIXTURES}: shared/ must sit beside the repo")
    return FIXTURES


@pytest.fixture(scope="session")
def kite_fixtures(fixtures_dir: Path) -> Path:
    return fixtures_dir / "kite"


@pytest.fixture(scope="session")
def binance_fixtures(fixtures_dir: Path) -> Path:
    return fixtures_dir / "binance"

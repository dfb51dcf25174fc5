"""The pure rooms (book/, wal/, events.py, the protocol parsers, replay/) import no event loop and
no network library, not even through a dependency: each is usable from plain synchronous code."""

from __future__ import annotations

import os
import subprocess
import sys

FORBIDDEN = ("asyncio", "websockets", "aiohttp", "requests")
PACKAGES = ("shriven.book", "shriven.wal", "shriven.replay", "shriven.analytics")
MODULES = ("shriven.events", "shriven.feeds.kite.protocol", "shriven.feeds.binance.parse")

# Imports every module of the pure packages and the pure modules one by one, and prints each
# that brought in a forbidden module, with what it brought.
_PROBE = f"""
import importlib, pkgutil, sys
forbidden = {FORBIDDEN!r}
names = list({MODULES!r})
for package in {PACKAGES!r}:
    names.append(package)
    path = importlib.import_module(package).__path__
    names += [package + "." + m.name for m in pkgutil.walk_packages(path)]
for name in names:
    importlib.import_module(name)
    bad = [m for m in forbidden if m in sys.modules]
    if bad:
        print(name, "imports", ",".join(bad))
        break
print("checked", len(names))
"""


def probe() -> str:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=os.environ, check=True
    )
    return out.stdout


def test_pure_rooms_import_no_event_loop_or_network_code() -> None:
    lines = probe().splitlines()
    assert lines[:-1] == []  # e.g. "shriven.wal.store imports asyncio"
    assert int(lines[-1].split()[1]) >= 25  # every module of the three packages was imported

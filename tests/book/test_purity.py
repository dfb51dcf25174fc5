from __future__ import annotations

import os
import subprocess
import sys


def test_book_and_binance_parsing_import_no_network_or_asyncio_code() -> None:
    code = (
        "import sys, shriven.book, shriven.feeds.binance.parse, shriven.book.depth_sync\n"
        "bad = [m for m in ('asyncio', 'aiohttp', 'websockets') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, check=True
    )
    assert out.stdout.strip() == ""

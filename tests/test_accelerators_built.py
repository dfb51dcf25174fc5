"""The optional C extensions fall back to their pure-Python references when they cannot be built,
so a broken build would pass every other test silently, slower. Where a C compiler is present
(CI's machines have gcc), every one must have been built."""

from __future__ import annotations

import shutil

import pytest

from shriven import events
from shriven.book import levels
from shriven.replay import colscan


@pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None,
    reason="no C compiler here: the pure-Python references are what runs",
)
def test_every_c_extension_was_built_where_a_compiler_exists() -> None:
    assert levels.ACCELERATED, "shriven.book._levels did not build: see pip install's output"
    assert colscan.ACCELERATED, "shriven.replay._colscan did not build: see pip install's output"
    assert events._kitetick is not None, "shriven._kitetick did not build: see pip install's output"
    assert events.DECODE_ACCELERATED, "shriven._records did not build: see pip install's output"

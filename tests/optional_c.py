"""The optional C extensions for their own tests: imported, or the test module skipped only when
the extension is absent because no C compiler was there to build it. Any other failure to import
(a build that is broken, a module of ours that does not import) fails the tests instead of
skipping them."""

from __future__ import annotations

import importlib
import shutil
from types import ModuleType

import pytest


def c_extension(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name or shutil.which("cc") or shutil.which("gcc"):
            raise
        pytest.skip(f"{name} was not built (no C compiler here)", allow_module_level=True)

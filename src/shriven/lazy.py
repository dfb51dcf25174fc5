"""Package namespaces whose names load at first use (PEP 562 module ``__getattr__``).

A package ``__init__`` that imports every submodule makes importing any one of them pay for all:
`shriven replay book` imported scipy (through the chain's analytics) and pydantic (through the
universe plans) before it read a byte. The packages that re-export their rooms' names map each
name to the module it lives in instead, and keep the imports under ``TYPE_CHECKING`` for readers,
type checkers and the import contracts."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``homes`` maps each public name to the module
    that defines it, imported when the name is first read (then cached in the package)."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        setattr(importlib.import_module(package), name, value)
        return value

    return __getattr__

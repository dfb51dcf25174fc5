"""Command-line entry point. Each command group lives in its own module and registers on ``app``."""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Final

from shriven.errors import ShrivenError

if TYPE_CHECKING:
    import typer

__all__ = ["app", "main"]

# Command modules register themselves on `app` when imported (one entry per module).
COMMAND_MODULES: Final = ("kite_commands", "replay", "run", "wal")
# A command of these groups needs only these modules: `shriven replay book` in a cold process
# spent most of its time importing kiteconnect and twisted for the Kite commands (2.0 of 2.4 s
# of `import shriven.cli` under -X importtime on the shared machine).
_GROUP_MODULES: Final = {"replay": ("replay",), "wal": ("replay", "wal")}


def _register(modules: tuple[str, ...] = COMMAND_MODULES) -> typer.Typer:
    for name in modules:
        importlib.import_module(f"shriven.cli.{name}")
    from shriven.cli.app import app

    return app


def __getattr__(name: str) -> object:
    if name == "app":  # `from shriven.cli import app`: every command registered
        return _register()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    group = sys.argv[1] if len(sys.argv) > 1 else ""
    try:
        app = _register(_GROUP_MODULES.get(group, COMMAND_MODULES))
        app()
    except ShrivenError as exc:
        print(f"shriven: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("shriven: interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as exc:  # a path the command was given but cannot use: the request is bad
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"shriven: error: {where}{exc.strerror or exc}", file=sys.stderr)
        sys.exit(2)

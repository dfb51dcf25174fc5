"""Command-line entry point. Each command group lives in its own module and registers on ``app``."""

from __future__ import annotations

import sys

# Command modules register themselves on `app` when imported (one import line per module).
from shriven.cli import analytics as _analytics  # noqa: F401
from shriven.cli import bus as _bus  # noqa: F401
from shriven.cli import kite_commands as _kite_commands  # noqa: F401
from shriven.cli import monitor as _monitor  # noqa: F401
from shriven.cli import replay as _replay  # noqa: F401
from shriven.cli import run as _run  # noqa: F401
from shriven.cli import serve as _serve  # noqa: F401
from shriven.cli import wal as _wal  # noqa: F401
from shriven.cli import wal_ops as _wal_ops  # noqa: F401
from shriven.cli.app import app
from shriven.errors import ShrivenError

__all__ = ["app", "main"]


def main() -> None:
    try:
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

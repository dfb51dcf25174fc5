"""Command-line entry point. Each command group lives in its own module and registers on ``app``
when imported; shriven.cli.tree's tables say which module that is, and only the invoked
command's module is imported."""

from __future__ import annotations

import sys

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

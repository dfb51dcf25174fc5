"""Run the `shriven` entry point in this process (as the console script does, one-line errors
included): a subprocess per call costs seconds of imports on a loaded machine."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pytest
import structlog

from shriven.cli import main


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def shriven(capsys: pytest.CaptureFixture[str], *args: object) -> Done:
    argv = sys.argv
    sys.argv = ["shriven", *map(str, args)]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
        structlog.reset_defaults()
    out = capsys.readouterr()
    return Done(code, out.out, out.err)

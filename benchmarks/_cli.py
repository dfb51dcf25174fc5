"""The command line every benchmark script shares: its module docstring and each argument's
default in the --help text."""

from __future__ import annotations

import argparse


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def parser(doc: str | None) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=doc, formatter_class=_Help)

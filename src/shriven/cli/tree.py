"""The command tree, built on demand: each group knows its subcommands' names, one-line helps
and the module that defines each, and builds only the command that is invoked.

typer turns every command it is given into click objects (a signature read and a parameter
object per option) before it parses a word; with all 23 commands that was a third of a cold
`shriven replay book`, and importing every CLI module was most of the rest. Here the group's
``commands`` mapping has every name from the table at once (``--help``, completion of names,
"did you mean"), and a command is imported and built the first time it is looked up.
tests/cli/test_command_tree.py checks the tables against the real commands.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, ClassVar

import typer
from typer._click import Command, Context, HelpFormatter
from typer._click.utils import make_default_short_help
from typer.core import TyperGroup
from typer.main import get_command_from_info, get_command_name, get_group_from_info
from typer.models import TyperInfo

from shriven.cli.plain_params import use_plain_params

# name -> (the module whose import registers the command, its one-line help), in the order
# `--help` lists them (typer's: commands in registration order, then groups).
Table = dict[str, tuple[str, str]]

TOP: Table = {
    "sink": (
        "shriven.cli.bus",
        "Archive what the bus carries: a durable pull consumer writing shriven stores, "
        "acknowledging only what is durable, each record once (see docs/bus.md).",
    ),
    "tail": (
        "shriven.cli.bus",
        "Print live records from the bus as they arrive (replay's table format), for people.",
    ),
    "show-subscriptions": (
        "shriven.cli.kite_commands",
        "Show the instruments shriven would record for one spot index.",
    ),
    "monitor": (
        "shriven.cli.monitor",
        "Watch recorders' /health and /metrics, refreshed every second: feeds, queue, WAL, "
        "books, disk, problems and the Kite universe.",
    ),
    "run": (
        "shriven.cli.run",
        "Record market data to the WAL, keep order books and write book snapshots.",
    ),
    "serve": (
        "shriven.cli.serve",
        "Serve a store: Kite ticker and Binance stream history over their own protocols, and "
        "the /v1 query API (records, book, instruments, stats).",
    ),
    "wal": ("shriven.cli.wal", "Inspect and verify WAL stores."),
    "replay": (
        "shriven.cli.replay",
        "Replay recorded records received in [--start, --end), ordered by receive time then "
        "per-stream sequence; or show a book at an instant (`replay book`).",
    ),
    "instruments": ("shriven.cli.kite_commands", "The Kite instrument dump and its cache."),
}

REPLAY: Table = {
    "book": (
        "shriven.cli.replay",
        "The book at an instant: nearest snapshot at or before it plus the recorded changes.",
    ),
    "index": (
        "shriven.cli.replay",
        "Write the columnar book index beside each sealed tick segment (for `replay book`).",
    ),
    "chain": (
        "shriven.cli.analytics",
        "The option chain at an instant (or on a clock grid) with IV and Greeks.",
    ),
    "arb": (
        "shriven.cli.analytics",
        "Put-call parity violations against the future, and Binance spot vs perpetual basis "
        "deviations with funding, after spreads, in a time range.",
    ),
    "features": (
        "shriven.cli.analytics",
        "Book features of one instrument on a clock grid (mid, spread, microprice, imbalances, "
        "order-flow imbalance, log return, realised volatility).",
    ),
}

WAL: Table = {
    "check": (
        "shriven.cli.wal",
        "Verify every frame of every segment: checksum, decompression, record decoding.",
    ),
    "stats": (
        "shriven.cli.wal",
        "Summarise a store from its segment indexes (fast; does not verify checksums), with the "
        "records per stream (kite, binance, system) that the store's metadata.json counted.",
    ),
    "verify-books": (
        "shriven.cli.replay",
        "Rebuild every book snapshot from the one before it plus the recorded changes; exit 1 on "
        "any difference.",
    ),
    "prune": (
        "shriven.cli.wal_ops",
        "Remove sealed segments from the front of a store, never the open one.",
    ),
    "archive": (
        "shriven.cli.wal_ops",
        "Recompress sealed segments with zstd, verify the copy, upload it, verify its checksum "
        "there, and only then remove the local segment.",
    ),
    "restore": (
        "shriven.cli.wal_ops",
        "Bring archived segments back into a readable store (checksums verified; existing "
        "identical segments are skipped), and rewrite its metadata.json.",
    ),
}

INSTRUMENTS: Table = {
    "fetch": (
        "shriven.cli.kite_commands",
        "Download the Kite instrument dump into the cache (fresh after 08:00 IST each day).",
    ),
}


class LazyCommands(MutableMapping[str, Command]):
    """A group's subcommands: every name of the table, each built at its first lookup."""

    def __init__(
        self, table: Table, build: Callable[[str], Command], built: MutableMapping[str, Command]
    ) -> None:
        self._table = table
        self._build = build
        self._built: dict[str, Command] = {}
        for name, command in built.items():
            self[name] = command

    def __getitem__(self, name: str) -> Command:
        if name not in self._built:
            if name not in self._table:
                raise KeyError(name)
            self[name] = self._build(name)
        return self._built[name]

    def __setitem__(self, name: str, command: Command) -> None:
        use_plain_params(command)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._built[name]

    def __iter__(self) -> Iterator[str]:
        yield from self._table
        yield from (name for name in self._built if name not in self._table)

    def __len__(self) -> int:
        return len(self._table) + sum(1 for name in self._built if name not in self._table)

    def __contains__(self, name: object) -> bool:
        return name in self._table or name in self._built


class LazyGroup(TyperGroup):
    """A typer group whose subcommands come from ``table``; the commands register on the Typer
    ``source`` names ("module:attribute") when their module is imported."""

    table: ClassVar[Table] = {}
    source: ClassVar[str] = ""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(self.table, self._build, self.commands)
        use_plain_params(self)

    def list_commands(self, ctx: Context) -> list[str]:
        return list(self.commands)

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        """TyperGroup's listing, with the helps from the table instead of building every
        command to ask it (tests/cli/test_command_tree.py: the same text)."""
        names = [n for n in self.list_commands(ctx) if n in self.table]
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = [(n, make_default_short_help(self.table[n][1], limit)) for n in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def _build(self, name: str) -> Command:
        module = self.table[name][0]
        importlib.import_module(module)
        owner, _, attribute = self.source.partition(":")
        source: typer.Typer = getattr(importlib.import_module(owner), attribute)
        command = build_command(source, name, self.rich_markup_mode, self.suggest_commands)
        if command is None:
            raise LookupError(f"{module} registers no command {name!r} on {self.source}")
        return command


class ReplayGroup(LazyGroup):
    table = REPLAY
    source = "shriven.cli.replay:replay_app"


class WalGroup(LazyGroup):
    table = WAL
    source = "shriven.cli.wal:wal_app"


class InstrumentsGroup(LazyGroup):
    table = INSTRUMENTS
    source = "shriven.cli.kite_commands:instruments_app"


def build_command(source: typer.Typer, name: str, markup: Any, suggest: bool) -> Command | None:
    """The click command ``name`` registered on ``source`` (None if none is), built alone: a
    group is built without its subcommands (its own LazyGroup builds them when named)."""
    from shriven.cli.app import app  # the root's exception settings, as typer passes them down

    short = app.pretty_exceptions_short
    for info in source.registered_commands:
        if (info.name or get_command_name(info.callback.__name__)) == name:  # type: ignore[union-attr]
            return get_command_from_info(
                info, pretty_exceptions_short=short, rich_markup_mode=markup
            )
    for group_info in source.registered_groups:
        if group_info.name == name:
            return get_group_from_info(
                _alone(group_info),
                pretty_exceptions_short=short,
                rich_markup_mode=markup,
                suggest_commands=suggest,
            )
    return None


def _alone(group_info: TyperInfo) -> TyperInfo:
    """The group's info with its registrations left out, so typer builds the group alone."""
    assert group_info.typer_instance is not None
    shell = copy.copy(group_info.typer_instance)
    shell.registered_commands = []
    shell.registered_groups = []
    alone = copy.copy(group_info)
    alone.typer_instance = shell
    return alone

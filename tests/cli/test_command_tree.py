"""The command tree's tables (shriven.cli.tree) are the real commands: every registered command
is in its group's table, with the module that registers it and its one-line
help; a group's `--help` lists them exactly as typer lists its built commands."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
import typer
from typer._click import Context, HelpFormatter
from typer.core import TyperGroup
from typer.main import get_command_name

import shriven.cli
from shriven.cli import tree
from shriven.cli.app import app


def _all_cli_modules() -> None:
    for module in pkgutil.iter_modules(shriven.cli.__path__):
        importlib.import_module(f"shriven.cli.{module.name}")


def _registered(source: typer.Typer) -> list[tuple[str, object]]:
    """(name, what registered it) for each command, then each group."""
    out: list[tuple[str, object]] = []
    for info in source.registered_commands:
        assert info.callback is not None
        out.append((info.name or get_command_name(info.callback.__name__), info.callback))
    out += [(g.name, g.typer_instance) for g in source.registered_groups]  # type: ignore[misc]
    return out


def _groups() -> list[tuple[tree.Table, typer.Typer]]:
    from shriven.cli.kite_commands import instruments_app
    from shriven.cli.replay import replay_app
    from shriven.cli.wal import wal_app

    return [
        (tree.TOP, app),
        (tree.REPLAY, replay_app),
        (tree.WAL, wal_app),
        (tree.INSTRUMENTS, instruments_app),
    ]


def test_each_table_names_every_registered_command_with_its_module() -> None:
    _all_cli_modules()
    for table, source in _groups():
        registered = _registered(source)
        names = [name for name, _ in registered]  # in import order, which varies here
        assert sorted(names) == sorted(table), "a new command needs its row in shriven.cli.tree"
        for name, owner in registered:
            module = importlib.import_module(table[name][0])
            if isinstance(owner, typer.Typer):  # a group: its module creates and registers it
                assert any(value is owner for value in vars(module).values()), name
            else:
                assert owner.__module__ == module.__name__, name  # type: ignore[attr-defined]


def test_each_table_help_is_the_commands_own_one_line_help() -> None:
    root = typer.main.get_command(app)
    ctx = Context(root)
    for name, (_module, line) in tree.TOP.items():
        command = root.get_command(ctx, name)
        assert command is not None
        assert command.get_short_help_str(10**6) == line, name
    subgroups = {"replay": tree.REPLAY, "wal": tree.WAL, "instruments": tree.INSTRUMENTS}
    for group_name, table in subgroups.items():
        group = root.get_command(ctx, group_name)
        assert isinstance(group, tree.LazyGroup)
        for name, (_module, line) in table.items():
            command = group.get_command(Context(group), name)
            assert command is not None
            assert command.get_short_help_str(10**6) == line, f"{group_name} {name}"


@pytest.mark.parametrize("width", [80, 40, 200])
def test_a_groups_listing_from_its_table_equals_typers_from_the_built_commands(width: int) -> None:
    _all_cli_modules()
    root = typer.main.get_command(app)
    groups = [root] + [root.get_command(Context(root), n) for n in ("replay", "wal", "instruments")]
    for group in groups:
        assert isinstance(group, tree.LazyGroup)
        ctx = Context(group)
        for name in group.list_commands(ctx):
            group.get_command(ctx, name)  # every command built, as typer's own listing needs
        ours, typers = HelpFormatter(width=width), HelpFormatter(width=width)
        group.format_commands(ctx, ours)
        TyperGroup.format_commands(group, ctx, typers)
        assert ours.getvalue() == typers.getvalue()
        assert "Commands:" in ours.getvalue()

"""The plain conversion of command-line values (shriven.cli.plain_params) gives what typer's own
pydantic conversion gives: the same value of the same type, or the same error message, for every
kind of parameter our commands use; and it needs pydantic for none of the plain values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer._click import Context
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param

from shriven.cli.plain_params import _UNSURE, PlainRuntimeParam, plain_value, use_plain_params

demo = typer.Typer()


@demo.command()
def every_kind(
    name: str = typer.Option("x", "--name"),
    maybe: str | None = typer.Option(None, "--maybe"),
    count: int = typer.Option(3, "--count"),
    depth: int = typer.Option(10, "--depth", min=1, max=200),
    rate: float = typer.Option(0.5, "--rate"),
    whole: float = typer.Option(1, "--whole"),
    path: Path = typer.Option(Path("data"), "--path"),
    where: Path | None = typer.Option(None, "--where"),
    symbol: list[str] = typer.Option([], "--symbol"),
    flag: bool = typer.Option(False, "--flag"),
    names: list[str] = typer.Argument(None),
) -> None:
    """Every kind of parameter our commands have."""


# (parameter, raw values a user or a default can give it)
VALUES: dict[str, list[Any]] = {
    "name": ["abc", "", " spaced ", "ünï", "x"],
    "maybe": ["a", None],
    "count": ["0", "12", "-3", "007", "+5", "1_0", " 5", "1.0", "1.5", "abc", "", "9" * 25, 3],
    "depth": ["1", "200", "0", "201", "-1", "abc", "10", 10],
    "rate": ["0.25", "1", "-2.5", "1e3", "inf", "nan", ".5", "5.", "abc", 0.5],
    "whole": ["2", 1, 1.5],
    "path": ["data", "/tmp/x", "", ".", Path("data")],
    "where": ["some/where", None],
    "symbol": [("a", "b"), (), ["x"], None],
    "flag": [True, False],
    "names": [("a",), (), None],
}
PLAIN = {  # values the plain rules convert themselves (the rest go to typer)
    "name": ["abc", "", " spaced ", "ünï", "x"],
    "maybe": ["a"],
    "count": ["0", "12", "-3", "007", 3],
    "depth": ["1", "200", "10", 10],
    "rate": ["0.25", "1", "-2.5", 0.5],
    "whole": ["2", 1, 1.5],
    "path": ["data", "/tmp/x", ".", Path("data")],
    "where": ["some/where"],
    "symbol": [("a", "b"), (), ["x"]],
    "flag": [True, False],
    "names": [("a",), ()],
}


def _outcome(runtime: Any, value: Any, param: Any, ctx: Context) -> tuple[str, Any]:
    try:
        got = runtime.coerce(value, param=param, ctx=ctx)
    except BadParameter as exc:
        return "error", exc.format_message()
    return type(got).__name__, repr(got)  # repr: nan equals nan


@pytest.mark.parametrize("name", list(VALUES))
def test_plain_conversion_equals_typers_for_each_value(name: str) -> None:
    command = typer.main.get_command(demo)
    ctx = Context(command)
    param = next(p for p in command.params if p.name == name)
    d = param.type_descriptor  # type: ignore[attr-defined]
    plain = PlainRuntimeParam(d.parameter_info, d.annotation, d)
    for value in VALUES[name]:
        typers = _outcome(build_runtime_param(d), value, param, ctx)
        assert _outcome(plain, value, param, ctx) == typers, (name, value)
        sure = plain_value(d, value) is not _UNSURE
        assert sure == (value in PLAIN.get(name, [])), (name, value)


def test_every_parameter_of_a_command_and_its_help_option_gets_the_plain_conversion() -> None:
    command = typer.main.get_command(demo)
    use_plain_params(command)
    help_option = command.get_help_option(Context(command))
    for param in [*command.params, help_option]:
        assert isinstance(param._runtime_param, PlainRuntimeParam), param.name  # type: ignore[union-attr]

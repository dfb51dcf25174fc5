"""Command-line values of the plain types (str, int, float, Path and lists of str) converted
without pydantic; anything else, and any value the plain rules are not sure of, goes to typer's
own conversion, so results and error messages are typer's.

typer 0.29 converts each parameter through a pydantic ``TypeAdapter`` built at parse time:
importing pydantic and building one adapter per parameter of the invoked command and its
groups (23 for `replay book`) was the largest part of a cold read command's start-up that was
not our own work. The one private piece of typer this touches (a parameter's ``_runtime_param``,
the ``RuntimeParam`` it caches) is in this module only; tests/cli/test_plain_params.py checks
every plain rule against typer's adapter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, get_args, get_origin

from typer._click import Command, Context
from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
from typer._param_types import coerce_cli_path
from typer.core import _TyperParameter
from typer.models import ParameterInfo

_UNSURE: Final = object()
# Plain decimal text only ("12", "-3", "0.25"): pydantic also takes "+5", "1_0", " 5", "1.0"
# as an int, "1e3" as a float, ...; those go to typer. Bounded in length: int() refuses over
# 4,300 digits.
_INT = re.compile(r"-?[0-9]{1,18}")
_FLOAT = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,15})?")


def plain_value(descriptor: TypeDescriptor, value: Any) -> Any:
    """``value`` converted as typer would, or ``_UNSURE`` where only typer can say."""
    annotation = descriptor.annotation
    info = descriptor.parameter_info
    if info.parser is not None:
        return _UNSURE
    if get_origin(annotation) is list:
        if get_args(annotation) != (str,) or not isinstance(value, (list, tuple)):
            return _UNSURE
        return list(value) if all(type(v) is str for v in value) else _UNSURE
    kind = type(value)
    if annotation is bool:
        return value if kind is bool else _UNSURE
    if annotation is Path and info.path_type is None:
        if kind is str and value:
            return Path(value)
        return value if isinstance(value, Path) else _UNSURE
    if kind is not str:  # a default: typer checks it as it would a value given
        if (annotation is int and kind is int) or (annotation is float and kind in (int, float)):
            return _in_range(annotation(value), info)
        return _UNSURE
    if annotation is str:
        return value
    if annotation is int and _INT.fullmatch(value):
        return _in_range(int(value), info)
    if annotation is float and _FLOAT.fullmatch(value):
        return _in_range(float(value), info)
    return _UNSURE


def _in_range(number: float, info: ParameterInfo) -> Any:
    if info.clamp or (info.min is not None and number < info.min):
        return _UNSURE  # typer's clamping, or its message for a value out of range
    if info.max is not None and number > info.max:
        return _UNSURE
    return number


@dataclass(frozen=True)
class PlainRuntimeParam(RuntimeParam):
    """typer's coercion contract, with the plain rules first and typer's own behind them."""

    descriptor: TypeDescriptor

    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        done = plain_value(self.descriptor, value)
        if done is _UNSURE:
            return build_runtime_param(self.descriptor)._coerce_value(value, param=param, ctx=ctx)
        if isinstance(done, Path):  # typer's existence, file/dir and resolve checks
            return coerce_cli_path(
                done, self.descriptor.parameter_info, path_type=Path, param=param, ctx=ctx
            )
        return done


def use_plain_params(command: Command) -> None:
    """Give each of ``command``'s parameters the plain conversion (typer builds its own only
    when a value is not plain). The --help option is made here, once, as click would make it
    at the first parse (the names are click's default: no command of ours changes them)."""
    help_option = command.get_help_option(Context(command))
    for param in [*command.params, help_option]:
        if isinstance(param, _TyperParameter) and param._runtime_param is None:
            d = param.type_descriptor
            if d.file_annotation is None:
                param._runtime_param = PlainRuntimeParam(d.parameter_info, d.annotation, d)

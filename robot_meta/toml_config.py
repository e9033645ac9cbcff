"""The one TOML-to-dataclass loader: launch files, ``robot.toml``, servo files, family and twin
parameter files and bundle manifests all go through :func:`read_toml` and :func:`from_dict`.

Rules, the same for every file:
- every key of a table must be a field of the dataclass; an unknown key is an error that names
  the field path and suggests the nearest field ("did you mean ...?");
- a field without a default is required;
- values are checked against the field's annotation: ``bool``, ``int``, ``float`` (an int is
  accepted and widened; NaN and inf are refused), ``str``, ``list[T]``, ``tuple[T, ...]``,
  ``tuple[A, B]``, ``dict[str, T]``, ``T | None``, ``Literal[...]`` and nested dataclasses;
- after a dataclass is filled, its ``validate(where)`` method, if any, runs its own checks
  (ranges, cross-field rules), so each config keeps its checks beside its fields.

Importable with no third-party dependency (no numpy, no torch).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from robot_meta.errors import UserError

T = TypeVar("T")


class TomlConfigError(UserError, ValueError):
    """A TOML file or table is invalid; the message names the file and the field."""


def did_you_mean(name: str, allowed: typing.Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest allowed name, else the list of allowed names."""
    allowed = list(allowed)
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; allowed: {', '.join(allowed)}" if allowed else ""


def read_toml(path: str | Path, error: type[Exception] = TomlConfigError) -> dict[str, Any]:
    """Parse a TOML file; a missing, unreadable or malformed file raises ``error`` naming it."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError as e:
        raise error(f"{p}: no such file") from e
    except OSError as e:
        raise error(f"{p}: cannot read ({e.strerror})") from e
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise error(f"{p}: malformed TOML: {e}") from e


def check_keys(table: dict[str, Any], allowed: typing.Iterable[str], where: str,
               error: type[Exception] = TomlConfigError) -> None:
    """Refuse any key of ``table`` not in ``allowed``, suggesting the nearest allowed one."""
    allowed = list(allowed)
    for k in table:
        if k not in allowed:
            raise error(f"{where}.{k}: unknown key{did_you_mean(k, allowed)}")


def from_dict(cls: type[T], data: Any, where: str,
              error: type[Exception] = TomlConfigError) -> T:
    """Build dataclass ``cls`` from a parsed TOML table, checking every key and type.

    ``where`` prefixes every message (for example ``"launch.toml: [run]"``); nested fields
    append ``.name`` and list items ``[i]``. Runs ``validate(where)`` on the result if defined.
    """
    if not isinstance(data, dict):
        raise error(f"{where}: expected a table, got {type(data).__name__} {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    check_keys(data, fields, where, error)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = coerce(data[name], hints[name], f"{where}.{name}", error)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise error(f"{where}.{name}: missing (required)")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate(where)
    return obj


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def coerce(value: Any, tp: Any, where: str, error: type[Exception] = TomlConfigError) -> Any:
    """Check ``value`` against annotation ``tp`` and convert it (int -> float, list -> tuple,
    table -> dataclass). Raises ``error`` naming ``where``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for a in options:
            try:
                return coerce(value, a, where, error)
            except error as e:  # type: ignore[misc]
                errors.append(str(e))
        raise error(errors[0] if len(options) == 1 else
                    f"{where}: expected one of {', '.join(_name(a) for a in options)}, "
                    f"got {_describe(value)}")
    if origin is typing.Literal:
        if value in args and type(value) in {type(a) for a in args}:
            return value
        raise error(f"{where}: expected one of {', '.join(repr(a) for a in args)}, got {value!r}"
                    + (did_you_mean(value, [str(a) for a in args]) if isinstance(value, str) else ""))
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return from_dict(tp, value, where, error)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise error(f"{where}: expected true or false, got {_describe(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise error(f"{where}: expected an integer, got {_describe(value)}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise error(f"{where}: expected a number (finite), got {_describe(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise error(f"{where}: expected a string, got {_describe(value)}")
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise error(f"{where}: expected a list, got {_describe(value)}")
        if origin is list or (len(args) == 2 and args[1] is Ellipsis):
            items = [coerce(x, args[0], f"{where}[{i}]", error) for i, x in enumerate(value)]
            return items if origin is list else tuple(items)
        if len(value) != len(args):
            raise error(f"{where}: expected a list of {len(args)} items, got {len(value)}: {value!r}")
        return tuple(coerce(x, a, f"{where}[{i}]", error)
                     for i, (x, a) in enumerate(zip(value, args, strict=True)))
    if origin is dict:
        key_t, val_t = args
        if not isinstance(value, dict):
            raise error(f"{where}: expected a table, got {_describe(value)}")
        if key_t is not str:
            raise TypeError(f"unsupported dict key type {key_t!r} at {where}")
        return {k: coerce(v, val_t, f"{where}.{k}", error) for k, v in value.items()}
    raise TypeError(f"unsupported config type {tp!r} at {where}")


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def load_dataclass(cls: type[T], path: str | Path,
                   error: type[Exception] = TomlConfigError) -> T:
    """Read a TOML file and build ``cls`` from it (see :func:`from_dict`)."""
    return from_dict(cls, read_toml(path, error), str(path), error)

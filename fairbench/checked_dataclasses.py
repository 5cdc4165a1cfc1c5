"""Build typed dataclasses from plain YAML/JSON data, refusing unknown keys and wrong types.

Typos in a task file must fail loudly: a silently ignored key would change what a score means.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from fairbench.errors import FairbenchError

T = TypeVar("T")


def from_dict(cls: type[T], data: Any, where: str) -> T:
    """Return `cls(**data)` after checking every key and value type; `where` names the place in errors."""
    if not isinstance(data, dict):
        raise FairbenchError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise FairbenchError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(fields)}")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in data:
            no_default = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
            if no_default:
                raise FairbenchError(f"{where}: missing required key {name!r}")
            continue
        values[name] = _convert(hints[name], data[name], f"{where}.{name}")
    return cls(**values)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except FairbenchError as exc:
                errors.append(str(exc))
        raise FairbenchError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise FairbenchError(f"{where}: must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise FairbenchError(f"{where}: expected a list, got {type(value).__name__}")
        item_type = args[0] if args else Any
        items = [_convert(item_type, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise FairbenchError(f"{where}: expected a mapping, got {type(value).__name__}")
        key_t, val_t = args or (Any, Any)
        return {_convert(key_t, k, where): _convert(val_t, v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FairbenchError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FairbenchError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise FairbenchError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise FairbenchError(f"{where}: expected text, got {value!r}")
        return value
    raise TypeError(f"strict.from_dict cannot convert to {tp!r}")  # a programming error, not user input

"""YAML mappings into typed dataclasses: the one loader behind ``qwen-train``'s run configuration
and ``qwen-data pipeline``'s YAML file.

Each value is checked against its field's annotation; a problem is one line naming the file and
the key, e.g. ``run.yaml: training.micro_batch_size: expected int, got 'four'``. YAML scalars are
taken for what they mean: an int for a float field, a numeric string such as ``3e-4`` (which YAML
1.1 reads as a string) for a number, a list for a tuple field. Nested dataclass fields are built
from nested mappings. Annotations other than these (a path, a class of the caller's) are passed
through for the dataclass itself to check.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Mapping

import yaml


class FieldError(ValueError):
    """One or more problems with a mapping's keys or values, one line each."""


def read_yaml(path: str | Path) -> Any:
    """The parsed file; an unreadable file or invalid YAML is one line naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise FieldError(f"{path}: cannot read ({error.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise FieldError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None


def located(where: str, key: str) -> str:
    """The location of ``key`` inside the mapping at ``where`` (``FILE:`` or ``FILE: a.b``)."""
    return f"{where} {key}" if where.endswith(":") else f"{where}.{key}"


def _optional_base(annotation: Any) -> tuple[bool, Any]:
    """(whether None is allowed, the annotation without None)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) < len(typing.get_args(annotation)) and len(members) == 1:
            return True, members[0]
    return False, annotation


def _type_name(annotation: Any) -> str:
    return getattr(typing.get_origin(annotation) or annotation, "__name__", str(annotation))


def coerce(value: Any, annotation: Any, where: str) -> Any:
    """``value`` as the type ``annotation`` names, or FieldError naming ``where``."""
    optional, base = _optional_base(annotation)
    if dataclasses.is_dataclass(base) and not (optional and value is None):
        return build_dataclass(base, value, where)  # an empty section: the defaults
    if value is None:
        if optional:
            return None
        raise FieldError(f"{where}: expected {_type_name(base)}, got None")
    origin = typing.get_origin(base) or base
    try:
        if origin is bool:
            if not isinstance(value, bool):
                raise TypeError
        elif origin in (int, float):
            if isinstance(value, bool):
                raise TypeError
            if not (origin is int and isinstance(value, int)):  # a big int stays exact
                number = float(value)
                if origin is int and not number.is_integer():
                    raise ValueError
                value = int(number) if origin is int else number
        elif origin is str:
            if not isinstance(value, str):
                raise TypeError
        elif origin in (list, tuple):
            if not isinstance(value, (list, tuple)):
                raise TypeError
            value = origin(value)
    except (TypeError, ValueError):
        raise FieldError(f"{where}: expected {_type_name(base)}, got {value!r}") from None
    return value


def build_dataclass(cls: type, values: Any, where: str, fixed: Mapping[str, Any] | None = None) -> Any:
    """``cls`` built from the mapping ``values`` found at ``where``; ``fixed`` are fields the
    caller sets (not keys of the mapping). Every unknown key is reported, one line each."""
    fixed = dict(fixed or {})
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise FieldError(f"{where.rstrip(':')}: expected a mapping of options, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    settable = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in fixed]
    unknown = sorted(set(values) - set(settable), key=str)
    if unknown:
        raise FieldError("\n".join(f"{located(where, str(key))}: unknown option (known: {', '.join(settable)})"
                                   for key in unknown))
    kwargs = {name: coerce(values[name], hints[name], located(where, name)) for name in settable if name in values}
    return cls(**kwargs, **fixed)

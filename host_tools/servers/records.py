"""The record a running server keeps in its state file: a dataclass read from and written to JSON
by its fields' names, so that a kind of server declares its fields and nothing more.

    @dataclass(frozen=True)
    class VBoardInfo(ServerInfo):
        name: str
        port: str
        pid: int
        baud: int | None = None

A field without a default must be in the JSON; a value of another type than the field's annotation
names (str, int, float, bool, list, dict, None) makes the record unreadable (TypeError), except
that an int is taken for a float and a null for a field that has a default gives the default.
Keys the record does not know are ignored, so an older dbch reads a newer state file.
"""

from __future__ import annotations

import dataclasses
from typing import Any

_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict, "None": type(None)}


def _types(annotation: Any) -> list | None:
    """The types an annotation ("int | None", "list[str]", float) names; None: not only these."""
    names = getattr(annotation, "__name__", None) or str(annotation)
    types = [_TYPES.get(part.strip().split("[")[0]) for part in names.split("|")]
    return None if None in types else types


def _fits(value: Any, types: list) -> bool:
    if isinstance(value, bool):  # a bool is an int to isinstance, not to a record
        return bool in types
    return any(isinstance(value, t) for t in types) or (float in types and isinstance(value, int))


def _has_default(field: dataclasses.Field) -> bool:
    return field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING


class ServerInfo:
    """Base of the state records (dataclasses): to_json() and from_json() by field name."""

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict):
        """The record `data` holds: KeyError if a field without a default is missing, TypeError
        if a value is not of its field's type."""
        values = {}
        for field in dataclasses.fields(cls):
            value = data.get(field.name)
            types = _types(field.type)
            if field.name not in data or value is None and types is not None and type(None) not in types:
                if _has_default(field):
                    continue  # missing, or null where the record has a default
            if field.name not in data:
                raise KeyError(field.name)
            if types is not None and not _fits(value, types):
                raise TypeError(f"{cls.__name__}.{field.name}: {value!r} is not {field.type}")
            values[field.name] = float(value) if types == [float] else value
        return cls(**values)

"""Typed option fields: the vocabulary recipes and plugins use to declare their settings.

A schema is a nested ``dict`` whose leaves are :class:`Field` objects and whose inner nodes are
sections. Options are declared as :class:`wmkit.options.Options` classes of fields (their
``fields`` / ``schema()`` are such dicts); the recipe loader merges a component's fields into the
section the component was chosen for.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from wmkit.errors import RecipeError


#: the largest integer any option accepts (what torch and numpy can hold); fields set tighter bounds
MAX_INT = 2**63 - 1

_TYPE_NAMES = {int: "integer", float: "number", str: "string", bool: "boolean", list: "list"}


@dataclass(frozen=True)
class Field:
    """One typed recipe option.

    ``type`` is one of int, float, str, bool, list. For lists, ``item`` is the element type.
    ``choices`` restricts the value to a fixed set. ``minimum``/``maximum`` bound numbers.
    """

    type: type
    default: Any
    help: str = ""
    choices: tuple | None = None
    item: type | None = None
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False
    extra: dict = field(default_factory=dict, compare=False)

    def check(self, value: Any, path: str) -> Any:
        """Return ``value`` converted to this field's type, or raise :class:`RecipeError`."""
        if value is None and self.nullable:
            return None
        value = _coerce(self.type, value, path, self.item)
        for i, number in enumerate(value if isinstance(value, list) else [value]):
            where = f"{path}[{i}]" if isinstance(value, list) else path
            if isinstance(number, float) and not math.isfinite(number):
                raise RecipeError(f"{where}: {number!r} is not a finite number; give a finite value")
            if isinstance(number, int) and not isinstance(number, bool) and abs(number) > MAX_INT:
                raise RecipeError(f"{where}: {number} is outside the integers wmkit accepts (|n| <= 2**63-1)")
        if self.choices is not None and value not in self.choices:
            hint = _suggest(str(value), [str(c) for c in self.choices])
            options = ", ".join(repr(c) for c in self.choices)
            raise RecipeError(f"{path}: {value!r} is not one of {options}{hint}")
        if self.minimum is not None and value < self.minimum:
            raise RecipeError(f"{path}: {value!r} is below the minimum {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise RecipeError(f"{path}: {value!r} is above the maximum {self.maximum}")
        return value

    @property
    def type_name(self) -> str:
        name = _TYPE_NAMES.get(self.type, self.type.__name__)
        if self.type is list and self.item is not None:
            name = f"list of {_TYPE_NAMES.get(self.item, self.item.__name__)}"
        return name


def _coerce(kind: type, value: Any, path: str, item: type | None = None) -> Any:
    bad = RecipeError(
        f"{path}: expected {_TYPE_NAMES.get(kind, kind.__name__)}, got {type(value).__name__} {value!r}"
    )
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise bad
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise bad
        return value
    if kind is list:
        if not isinstance(value, (list, tuple)):
            raise bad
        if item is None:
            return list(value)
        return [_coerce(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise RecipeError(f"{path}: unsupported field type {kind!r}")


def _suggest(word: str, candidates) -> str:
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def validate(schema: Mapping, values: Mapping, prefix: str = "") -> dict:
    """Validate ``values`` against ``schema``; fill defaults; return a new nested dict.

    Unknown keys raise :class:`RecipeError` naming the dotted path and the closest known key.
    """
    out: dict = {}
    for key in values:
        if key not in schema:
            path = f"{prefix}{key}"
            match = difflib.get_close_matches(key, list(schema), n=1, cutoff=0.6)
            hint = f" (did you mean '{prefix}{match[0]}'?)" if match else ""
            raise RecipeError(f"{path}: unknown key{hint}")
    for key, spec in schema.items():
        path = f"{prefix}{key}"
        if isinstance(spec, Field):
            out[key] = spec.check(values[key], path) if key in values else _copy(spec.default)
        else:
            sub = values.get(key, {})
            if not isinstance(sub, Mapping):
                raise RecipeError(f"{path}: expected a table (section), got {type(sub).__name__} {sub!r}")
            out[key] = validate(spec, sub, prefix=f"{path}.")
    return out


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def lookup(schema: Mapping, dotted: str) -> Field | Mapping:
    """Return the field or section at ``dotted``; raise :class:`RecipeError` with a suggestion."""
    node: Any = schema
    walked = []
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            here = ".".join(walked)
            known = list(node.keys()) if isinstance(node, Mapping) else []
            match = difflib.get_close_matches(part, known, n=1, cutoff=0.6)
            prefix = f"{here}." if here else ""
            hint = f" (did you mean '{prefix}{match[0]}'?)" if match else ""
            raise RecipeError(f"{'.'.join(walked + [part])}: unknown key{hint}")
        node = node[part]
        walked.append(part)
    return node

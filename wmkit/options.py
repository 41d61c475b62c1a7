"""Typed option groups: each recipe section and each component's options, declared once.

A subclass of :class:`Options` lists its options as :class:`~wmkit.schema.Field` class attributes
(and, for a core section, its sub-sections as :class:`Options` subclasses)::

    class MLPOptions(Options):
        hidden = Field(int, 128, "action MLP hidden width", minimum=1, maximum=1 << 16)

That one declaration is the recipe schema (``MLPOptions.fields``: type, default, range, help; what
validation, ``wmkit recipe keys`` and the did-you-mean messages read) and the type of the frozen
record a component reads: ``opts = MLPOptions.of(options)`` checks and fills the values, and
``opts.hidden`` is an ``int``. Checks that relate several fields live in :meth:`Options.check`,
beside those fields.

Why not pydantic: the recipe errors (dotted path, bounds, close-match suggestion) and the
``recipe keys`` tables are made from :class:`~wmkit.schema.Field`, the vocabulary third-party
plugins already declare their options in; records built from the same fields keep every message
as it was, keep a plugin's ``{"key": Field(...)}`` dict working (:meth:`Options.from_fields`) and
add no import cost to ``wmkit --help``.

Import-light (no torch): registration modules declare their options with it.
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterator, Mapping

from wmkit.errors import RecipeError
from wmkit.schema import Field


class Options(Mapping):
    """A frozen, validated record of one option group; also a read-only mapping of its values.

    ``fields`` maps each option to its :class:`~wmkit.schema.Field`, ``sections`` each sub-section
    to its :class:`Options` class, both in declaration order. Keys of the given values that the
    class does not declare (the component-choosing key, options another component adds to a shared
    section, the model-wide keys a kind shares) are kept as read-only extras: the recipe schema has
    validated them already.
    """

    fields: ClassVar[dict[str, Field]] = {}
    sections: ClassVar[dict[str, type["Options"]]] = {}
    #: fields and sections in declaration order (the order of the recipe schema)
    members: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        members: dict[str, Any] = {}
        for base in reversed(cls.__mro__[1:]):
            members.update(getattr(base, "members", {}))
        for key, value in list(vars(cls).items()):
            if isinstance(value, Field) or (isinstance(value, type) and issubclass(value, Options)):
                if hasattr(Options, key):
                    raise TypeError(f"{cls.__name__}.{key}: an option may not be called like a method of Options")
                members[key] = value
                delattr(cls, key)  # instances answer with the value (__getattr__)
        cls.members = members
        cls.fields = {k: v for k, v in members.items() if isinstance(v, Field)}
        cls.sections = {k: v for k, v in members.items() if not isinstance(v, Field)}

    def __init__(self, values: Mapping[str, Any], extra: Mapping[str, Any] | None = None):
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_extra", dict(extra or {}))

    @classmethod
    def of(cls, values: Mapping[str, Any] | None = None, path: str = "") -> "Options":
        """The record of ``values`` (a mapping, or already a record of this class: returned as is):
        each declared field checked (:meth:`Field.check`, errors named ``path + key``), absent ones
        at their defaults, sub-sections built the same way."""
        if isinstance(values, cls):
            return values
        given = dict(values or {})
        out: dict[str, Any] = {}
        for key, member in cls.members.items():
            where = f"{path}{key}"
            if isinstance(member, Field):
                out[key] = member.check(given.pop(key), where) if key in given else _copy(member.default)
                continue
            sub = given.pop(key, {})
            if not isinstance(sub, Mapping):
                raise RecipeError(f"{where}: expected a table (section), got {type(sub).__name__} {sub!r}")
            out[key] = member.of(sub, f"{where}.")
        return cls(out, given)

    @classmethod
    def from_fields(cls, name: str, fields: Mapping[str, Field]) -> type["Options"]:
        """An :class:`Options` class declaring ``fields``: what a plugin's ``{"key": Field}`` dict becomes."""
        return type(name, (cls,), dict(fields))

    @classmethod
    def schema(cls) -> dict:
        """The nested ``{key: Field | {…}}`` schema of this group (what :func:`wmkit.schema.validate` reads)."""
        return {key: member if isinstance(member, Field) else member.schema() for key, member in cls.members.items()}

    def check(self, path: str = "") -> None:
        """Refuse values that are valid one by one but not together (``RecipeError`` naming the keys).
        The default checks every sub-section, in order; a group that relates fields overrides it."""
        for key in self.sections:
            self[key].check(f"{path}{key}.")

    # -- a frozen record --------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_values", "_extra"):
            raise AttributeError(name)
        for store in (self.__dict__.get("_values", {}), self.__dict__.get("_extra", {})):
            if name in store:
                return store[name]
        raise AttributeError(f"{type(self).__name__} has no option {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only: options are set in the recipe")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only: options are set in the recipe")

    # -- a read-only mapping (what a component written for the dict form of options reads) ----------
    def __getitem__(self, key: str) -> Any:
        if key in self._values:
            return self._values[key]
        return self._extra[key]

    def __iter__(self) -> Iterator[str]:
        yield from self._values
        yield from self._extra

    def __len__(self) -> int:
        return len(self._values) + len(self._extra)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Options) and type(self) is not type(other):
            return False
        return dict(self) == dict(other) if isinstance(other, Mapping) else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict:
        """The values as nested plain dicts (sub-sections included)."""
        return {key: value.to_dict() if isinstance(value, Options) else _copy(value) for key, value in self.items()}

    def __repr__(self) -> str:
        inner = ", ".join(f"{key}={value!r}" for key, value in self._values.items())
        return f"{type(self).__name__}({inner})"

    def __reduce__(self):
        return (_rebuild, (type(self), self._values, self._extra))


def _rebuild(cls: type[Options], values: dict, extra: dict) -> Options:
    return cls(values, extra)


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value

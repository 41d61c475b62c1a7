"""The plugin host: loads ``wmkit`` entry points, isolates failures, and owns the component registry.

:class:`PluginHost` is a typed facade (as in tox 4): it is the only code that calls ``pm.hook``.
Everything else asks it for components by kind and name.

Environment:

- ``WMKIT_LOAD_PLUGINS=a,b`` loads only these entry points (an allow-list; ``''`` loads none).
- ``WMKIT_DISABLE_PLUGINS=a,b`` blocks these entry points.
- ``WMKIT_STRICT_PLUGINS=1`` (or ``wmkit --strict-plugins``) turns load errors into failures.
- ``WMKIT_TRACE_PLUGINS=1`` prints every hook call to stderr, and the full traceback of a component
  whose construction fails (otherwise that failure is one line naming plugin, class and error).

Isolation: built-in registrations (distribution ``wmkit``) are loaded first and win over a
third-party one of the same name whatever the load order; the third-party plugin is then reported
as failed, naming both distributions. Any ``BaseException`` but ``KeyboardInterrupt`` raised by a
plugin (``SystemExit`` at import included) is caught and reported. A class with unimplemented
abstract methods is refused when it is registered (or first imported, for lazy targets), and
``wmkit plugins`` shows it.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Iterable, Mapping

import pluggy

from wmkit import hookspecs, kinds
from wmkit.errors import PluginError
from wmkit.options import Options

GROUP = "wmkit"
#: the distribution whose registrations are built-in: they win over any third-party name clash
BUILTIN_DISTRIBUTION = "wmkit"

#: component kind -> the hook that registers it (derived from :data:`wmkit.kinds.KINDS`)
KINDS = {kind.name: kind.hook for kind in kinds.KINDS}


@dataclass
class Component:
    """One named implementation of one kind, as registered by a plugin."""

    kind: str
    name: str
    target: Any  # a class, or "module:attribute"
    plugin: str
    version: str
    distribution: str
    #: the component's recipe schema ``{key: Field}`` (``options_type.fields``)
    options: dict = field(default_factory=dict)
    description: str = ""
    info: dict = field(default_factory=dict)
    #: the :class:`~wmkit.options.Options` class of its options (generated for a ``{key: Field}`` dict)
    options_type: type = Options

    def load(self) -> Any:
        """Import (if needed) and return the implementing class."""
        if not isinstance(self.target, str):
            return self.target
        module_name, _, attr = self.target.partition(":")
        try:
            obj = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken plugin (even one calling sys.exit) must not take the host down
            raise PluginError(
                f"{self.kind} {self.name!r} from plugin {self.plugin!r} failed to import "
                f"{self.target}: {_describe(exc)}"
            ) from None
        gap = abstract_gap(obj)
        if gap:
            raise PluginError(f"{self.kind} {self.name!r} from plugin {self.plugin!r}: class {_qualname(obj)} "
                              f"does not implement {gap}; the plugin must define them")
        return obj

    @property
    def builtin(self) -> bool:
        return self.distribution == BUILTIN_DISTRIBUTION


@dataclass
class PluginRecord:
    """What happened when one plugin (entry point) was loaded."""

    name: str
    distribution: str
    version: str
    status: str = "ok"  # "ok" | "error" | "blocked"
    error: str = ""
    hooks: list[str] = field(default_factory=list)
    #: (kind, name) pairs this plugin registered or tried to register (named when it failed)
    provides: list[tuple[str, str]] = field(default_factory=list)


class PluginHost:
    """Loads plugins and answers "which components of kind K exist, and build me name N"."""

    def __init__(self, *, entry_points: Iterable[metadata.EntryPoint] | None = None,
                 strict: bool | None = None, load: bool = True):
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self.components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        #: (kind, name) -> why a registered component cannot be used (e.g. unimplemented abstract methods)
        self.broken: dict[tuple[str, str], str] = {}
        self.strict = _env_flag("WMKIT_STRICT_PLUGINS") if strict is None else strict
        if _env_flag("WMKIT_TRACE_PLUGINS"):
            self.pm.trace.root.setwriter(lambda msg: print(msg, end="", file=sys.stderr))
            self.pm.enable_tracing()
        if load:
            self._load_entry_points(entry_points)

    # -- loading ------------------------------------------------------------------------------
    def _load_entry_points(self, entry_points) -> None:
        if entry_points is None:
            entry_points = metadata.entry_points(group=GROUP)
        allow = _env_list("WMKIT_LOAD_PLUGINS")
        blocked = set(_env_list("WMKIT_DISABLE_PLUGINS") or [])
        found = set()
        located = [(ep, *_distribution_of(ep)) for ep in entry_points]
        # built-ins first, so a third-party clash is the one refused whatever the names' order
        for ep, dist_name, version in sorted(located, key=lambda e: (e[1] != BUILTIN_DISTRIBUTION, e[0].name)):
            found.add(ep.name)
            record = PluginRecord(name=ep.name, distribution=dist_name, version=version)
            self.records[ep.name] = record
            if (allow is not None and ep.name not in allow) or ep.name in blocked:
                record.status = "blocked"
                self.pm.set_blocked(ep.name)
                continue
            try:
                module = ep.load()
                self.pm.register(module, name=ep.name)
                self.pm.check_pending()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # SystemExit at import included: reported, never fatal
                self._fail(record, _describe(exc))
                continue
            self._collect(ep.name, record)
        if allow:
            for name in allow:
                if name not in found:
                    self._fail(PluginRecord(name=name, distribution="", version=""),
                               f"plugin {name!r} named in WMKIT_LOAD_PLUGINS could not be found")

    def register_plugin(self, obj: Any, name: str, *, distribution: str = "", version: str = "") -> PluginRecord:
        """Register an in-process plugin object (a module or a class instance with hookimpls)."""
        record = PluginRecord(name=name, distribution=distribution or name, version=version)
        self.records[name] = record
        try:
            self.pm.register(obj, name=name)
            self.pm.check_pending()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            self._fail(record, _describe(exc))
            return record
        self._collect(name, record)
        return record

    def _fail(self, record: PluginRecord, message: str) -> None:
        record.status = "error"
        record.error = message
        self.records[record.name] = record
        if record.name in {p for p, _ in self.pm.list_name_plugin()}:
            self.pm.unregister(name=record.name)
        if self.strict:
            raise PluginError(f"plugin {record.name!r} failed to load: {message}")

    def _collect(self, plugin_name: str, record: PluginRecord) -> None:
        """Call this plugin's register hooks and add its components; duplicates are errors."""
        plugin = self.pm.get_plugin(plugin_name)
        staged: list[Component] = []
        for kind, hook_name in KINDS.items():
            impls = [i for i in getattr(self.pm.hook, hook_name).get_hookimpls() if i.plugin is plugin]
            if not impls:
                continue
            record.hooks.append(hook_name)

            def register(name: str, target: Any, *, options: dict | None = None,
                         description: str = "", _kind: str = kind, **info: Any) -> None:
                if options is None:
                    options = (getattr(target, "options", None) or {}) if not isinstance(target, str) else {}
                if not description and not isinstance(target, str):
                    description = (getattr(target, "description", "") or (target.__doc__ or "").strip().split("\n")[0])
                typed = options_type(options, f"{name}_options")
                staged.append(Component(kind=_kind, name=name, target=target, plugin=plugin_name,
                                        version=record.version, distribution=record.distribution,
                                        options=dict(typed.fields), description=description, info=info,
                                        options_type=typed))

            try:
                for impl in impls:
                    impl.function(register=register)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                record.provides = [(c.kind, c.name) for c in staged]
                self._fail(record, f"{hook_name} raised {_describe(exc)}")
                return
        record.provides = [(c.kind, c.name) for c in staged]
        for comp in staged:
            existing = self.components[comp.kind].get(comp.name)
            if existing is not None:
                if comp.builtin and not existing.builtin:
                    # a built-in always wins: the third-party plugin that took its name is refused
                    self._evict(existing.plugin, _clash(comp, existing))
                else:
                    self._fail(record, _clash(existing, comp))
                    # roll back what this plugin already added
                    for other in staged:
                        if self.components[other.kind].get(other.name) is other:
                            del self.components[other.kind][other.name]
                        self.broken.pop((other.kind, other.name), None)
                    return
            self.components[comp.kind][comp.name] = comp
            self.broken.pop((comp.kind, comp.name), None)
            gap = abstract_gap(comp.target) if not isinstance(comp.target, str) else ""
            if gap:
                self.broken[(comp.kind, comp.name)] = (f"class {_qualname(comp.target)} does not implement {gap}")

    def _evict(self, plugin_name: str, message: str) -> None:
        """Remove every component of ``plugin_name`` and mark the plugin failed with ``message``."""
        for kind in self.components:
            for name in [n for n, c in self.components[kind].items() if c.plugin == plugin_name]:
                del self.components[kind][name]
                self.broken.pop((kind, name), None)
        record = self.records.get(plugin_name) or PluginRecord(name=plugin_name, distribution="", version="")
        strict, self.strict = self.strict, False  # the built-in's load must not fail for another's clash
        try:
            self._fail(record, message)
        finally:
            self.strict = strict

    # -- queries --------------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        return sorted(self.components[kind])

    def get(self, kind: str, name: str) -> Component:
        """The component ``name`` of ``kind``, or a :class:`PluginError` listing what exists."""
        if kind not in self.components:
            raise PluginError(f"unknown component kind {kind!r}; kinds are {', '.join(KINDS)}")
        label = kinds.get(kind).label if kind in kinds.BY_NAME else kind.replace("_", " ")
        if (kind, name) in self.broken:
            comp = self.components[kind][name]
            raise PluginError(f"{label} {name!r} from plugin {comp.plugin!r} ({comp.distribution}) cannot be "
                              f"used: {self.broken[(kind, name)]}")
        try:
            return self.components[kind][name]
        except KeyError:
            pass
        available = ", ".join(self.names(kind)) or "none"
        failed = self.errors()
        for record in failed:  # a failed plugin that registered (or is named like) this component
            if (kind, name) in record.provides or (not record.provides and record.name == name):
                raise PluginError(f"{label} {name!r} is unavailable: plugin {record.name!r} that provides it "
                                  f"failed to load: {record.error} (available: {available})")
        extra = (f"; plugin(s) {', '.join(repr(r.name) for r in failed)} failed to load (`wmkit plugins`)"
                 if failed else "")
        raise PluginError(f"unknown {label} {name!r}; available: {available}{extra}")

    def resolve(self, kind: str, name: str) -> Any:
        """The implementing class of component ``name`` of ``kind`` (imports it if lazy)."""
        return self.get(kind, name).load()

    def construct(self, kind: str, name: str, *args: Any, **kwargs: Any) -> Any:
        """An instance of component ``name`` of ``kind``. Whatever its constructor raises becomes one
        :class:`PluginError` line naming plugin, class and error (``WMKIT_TRACE_PLUGINS=1`` prints the
        traceback too)."""
        comp = self.get(kind, name)
        cls = comp.load()
        try:
            return cls(*args, **kwargs)
        except KeyboardInterrupt:
            raise
        except PluginError:
            raise
        except BaseException as exc:
            if _env_flag("WMKIT_TRACE_PLUGINS"):
                traceback.print_exc(file=sys.stderr)
            label = kinds.get(kind).label if kind in kinds.BY_NAME else kind.replace("_", " ")
            raise PluginError(f"{label} {name!r} from plugin {comp.plugin!r} ({comp.distribution or '?'}): "
                              f"constructing {_qualname(cls)} failed: {_describe(exc)} "
                              f"(WMKIT_TRACE_PLUGINS=1 shows the traceback)") from None

    def constructor(self, kind: str, name: str):
        """``lambda *a, **k: construct(kind, name, *a, **k)``: what ``build_world_model``'s ``resolve`` needs."""
        def build(*args: Any, **kwargs: Any) -> Any:
            return self.construct(kind, name, *args, **kwargs)

        return build

    def domain(self, name: str, options: Mapping | None = None):
        """Build the domain ``name`` with its ``[data]`` options, as its typed record."""
        return self.construct("domain", name, self.get("domain", name).options_type.of(options or {}, "data."))

    def check_components(self) -> None:
        """Import every lazy component once, recording import failures and abstract gaps in
        :attr:`broken` (what ``wmkit plugins`` shows)."""
        for kind in self.components:
            for name, comp in self.components[kind].items():
                if (kind, name) in self.broken:
                    continue
                try:
                    comp.load()
                except PluginError as exc:
                    self.broken[(kind, name)] = str(exc)

    def errors(self) -> list[PluginRecord]:
        return [r for r in self.records.values() if r.status == "error"]

    def listing(self) -> list[dict]:
        """One row per component (and one per failed plugin): what ``wmkit plugins --json`` prints."""
        rows = []
        for kind in KINDS:
            for name in self.names(kind):
                comp = self.components[kind][name]
                broken = self.broken.get((kind, name))
                rows.append({"name": name, "kind": kind, "plugin": comp.plugin,
                             "distribution": comp.distribution, "version": comp.version,
                             "status": "error" if broken else "ok", "error": broken,
                             "description": comp.description})
        for record in self.records.values():
            if record.status != "ok":
                rows.append({"name": record.name, "kind": "plugin", "plugin": record.name,
                             "distribution": record.distribution, "version": record.version,
                             "status": record.status, "error": record.error or None,
                             "description": ""})
        return rows


def options_type(options: Any, name: str) -> type[Options]:
    """The :class:`~wmkit.options.Options` class a registration declares: the class itself, or one
    generated from the ``{key: Field}`` dict of plugins written before typed options."""
    if isinstance(options, type) and issubclass(options, Options):
        return options
    if not isinstance(options, Mapping):
        raise TypeError(f"options must be an wmkit.options.Options class or a dict of wmkit.schema.Field, "
                        f"got {type(options).__name__}")
    return Options.from_fields(name, options)


def abstract_gap(obj: Any) -> str:
    """``"abstract method(s) a, b"`` when ``obj`` is a class that leaves abstract methods unimplemented."""
    if inspect.isclass(obj) and inspect.isabstract(obj):
        missing = sorted(getattr(obj, "__abstractmethods__", ()))
        return f"abstract method{'s' if len(missing) != 1 else ''} {', '.join(missing)}"
    return ""


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def _describe(exc: BaseException) -> str:
    """One line for an exception a plugin raised (``SystemExit(0)`` included)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, SystemExit):
        return f"SystemExit({exc.code!r}) (the plugin called sys.exit)"
    return f"{type(exc).__name__}: {text}"[:400] if text else type(exc).__name__


def _clash(kept: Component, refused: Component) -> str:
    return (f"{refused.kind} {refused.name!r} is registered twice: by plugin {kept.plugin!r} "
            f"(distribution {kept.distribution}) and by plugin {refused.plugin!r} "
            f"(distribution {refused.distribution})"
            + ("; the built-in wins" if kept.builtin else "")
            + f"; uninstall or disable one (WMKIT_DISABLE_PLUGINS={refused.plugin})")


def _distribution_of(ep: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "", ""
    return dist.metadata["Name"], dist.version


def _env_list(name: str) -> list[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


_HOST: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, loaded on first use."""
    global _HOST
    if _HOST is None:
        _HOST = PluginHost()
    return _HOST


def reset_host(host: PluginHost | None = None) -> None:
    """Replace (or forget) the process-wide host; used by tests and ``--strict-plugins``."""
    global _HOST
    _HOST = host


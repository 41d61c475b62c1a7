"""The plugin host: loads ``wmkit`` entry points, isolates failures, and owns the component registry.

:class:`PluginHost` is a typed facade (as in tox 4): it is the only code that calls ``pm.hook``.
Everything else asks it for components by kind and name.

Environment:

- ``WMKIT_LOAD_PLUGINS=a,b`` loads only these entry points (an allow-list; ``''`` loads none).
- ``WMKIT_DISABLE_PLUGINS=a,b`` blocks these entry points.
- ``WMKIT_STRICT_PLUGINS=1`` (or ``wmkit --strict-plugins``) turns load errors into failures.
- ``WMKIT_TRACE_PLUGINS=1`` prints every hook call to stderr.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Iterable

import pluggy

from wmkit import hookspecs, kinds
from wmkit.errors import PluginError

GROUP = "wmkit"

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
    options: dict = field(default_factory=dict)
    description: str = ""
    info: dict = field(default_factory=dict)

    def load(self) -> Any:
        """Import (if needed) and return the implementing class."""
        if not isinstance(self.target, str):
            return self.target
        module_name, _, attr = self.target.partition(":")
        try:
            obj = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:  # a broken plugin must not take the host down
            raise PluginError(
                f"{self.kind} {self.name!r} from plugin {self.plugin!r} failed to import "
                f"{self.target}: {type(exc).__name__}: {exc}"
            ) from exc
        return obj


@dataclass
class PluginRecord:
    """What happened when one plugin (entry point) was loaded."""

    name: str
    distribution: str
    version: str
    status: str = "ok"  # "ok" | "error" | "blocked"
    error: str = ""
    hooks: list[str] = field(default_factory=list)


class PluginHost:
    """Loads plugins and answers "which components of kind K exist, and build me name N"."""

    def __init__(self, *, entry_points: Iterable[metadata.EntryPoint] | None = None,
                 strict: bool | None = None, load: bool = True):
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self.components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
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
        for ep in sorted(entry_points, key=lambda e: e.name):
            found.add(ep.name)
            dist_name, version = _distribution_of(ep)
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
            except Exception as exc:
                self._fail(record, f"{type(exc).__name__}: {exc}")
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
        except Exception as exc:
            self._fail(record, f"{type(exc).__name__}: {exc}")
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
                    options = dict(getattr(target, "options", {}) or {}) if not isinstance(target, str) else {}
                if not description and not isinstance(target, str):
                    description = (getattr(target, "description", "") or (target.__doc__ or "").strip().split("\n")[0])
                staged.append(Component(kind=_kind, name=name, target=target, plugin=plugin_name,
                                        version=record.version, distribution=record.distribution,
                                        options=dict(options), description=description, info=info))

            try:
                for impl in impls:
                    impl.function(register=register)
            except Exception as exc:
                self._fail(record, f"{hook_name} raised {type(exc).__name__}: {exc}")
                return
        for comp in staged:
            existing = self.components[comp.kind].get(comp.name)
            if existing is not None:
                message = (f"{comp.kind} {comp.name!r} is registered twice: by plugin {existing.plugin!r} "
                           f"(distribution {existing.distribution}) and by plugin {comp.plugin!r} "
                           f"(distribution {comp.distribution}); uninstall or disable one "
                           f"(WMKIT_DISABLE_PLUGINS={comp.plugin})")
                self._fail(record, message)
                # roll back what this plugin already added
                for other in staged:
                    if self.components[other.kind].get(other.name) is other:
                        del self.components[other.kind][other.name]
                return
            self.components[comp.kind][comp.name] = comp

    # -- queries --------------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        return sorted(self.components[kind])

    def get(self, kind: str, name: str) -> Component:
        """The component ``name`` of ``kind``, or a :class:`PluginError` listing what exists."""
        if kind not in self.components:
            raise PluginError(f"unknown component kind {kind!r}; kinds are {', '.join(KINDS)}")
        try:
            return self.components[kind][name]
        except KeyError:
            available = ", ".join(self.names(kind)) or "none"
            label = kinds.get(kind).label
            raise PluginError(f"unknown {label} {name!r}; available: {available}") from None

    def resolve(self, kind: str, name: str) -> Any:
        """The implementing class of component ``name`` of ``kind`` (imports it if lazy)."""
        return self.get(kind, name).load()

    def domain(self, name: str, options: dict | None = None):
        """Build the domain ``name`` with its resolved ``[data]`` options."""
        cls = self.resolve("domain", name)
        return cls(options or {})

    def errors(self) -> list[PluginRecord]:
        return [r for r in self.records.values() if r.status == "error"]

    def listing(self) -> list[dict]:
        """One row per component (and one per failed plugin): what ``wmkit plugins --json`` prints."""
        rows = []
        for kind in KINDS:
            for name in self.names(kind):
                comp = self.components[kind][name]
                rows.append({"name": name, "kind": kind, "plugin": comp.plugin,
                             "distribution": comp.distribution, "version": comp.version,
                             "status": "ok", "error": None, "description": comp.description})
        for record in self.records.values():
            if record.status != "ok":
                rows.append({"name": record.name, "kind": "plugin", "plugin": record.name,
                             "distribution": record.distribution, "version": record.version,
                             "status": record.status, "error": record.error or None,
                             "description": ""})
        return rows


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


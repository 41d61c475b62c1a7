"""wmkit: train and audit tiny JEPA world models of transitions.

Import-light on purpose: ``import wmkit`` pulls in neither torch nor datasets. The Python API
(docs/python.md) loads on first use through the module ``__getattr__`` below:
``wmkit.load_recipe``, ``wmkit.train``, ``wmkit.audit``, ``wmkit.sweep``, ``wmkit.export``,
``wmkit.load`` (implemented in :mod:`wmkit.api`).

``wmkit.train``, ``wmkit.audit``, ``wmkit.sweep`` and ``wmkit.export`` are also the names of wmkit's
modules, and importing a submodule sets it as an attribute of the package. So those modules are made
callable (:func:`_callable_module`): ``wmkit.train(recipe)`` calls :func:`wmkit.api.train`, and
``wmkit.train.train`` stays the low-level training loop, whichever was imported first.
"""

import importlib
import sys
import types

import pluggy

__version__ = "0.1.0"

#: decorate plugin hook implementations with this (``@wmkit.hookimpl``)
hookimpl = pluggy.HookimplMarker("wmkit")

#: facade name -> module that defines it (imported on first use)
_FACADE = {"load_recipe": "wmkit.api", "load": "wmkit.api", "LoadedModel": "wmkit.api",
           "RunResult": "wmkit.train"}
#: facade names that are modules too (callable, see the module docstring)
_CALLABLE_MODULES = ("train", "audit", "sweep", "export")


class _CallableModule(types.ModuleType):
    """A module that forwards calls to one function of the Python API."""

    def __call__(self, *args, **kwargs):
        module, name = self.__dict__["_wmkit_api_call"]
        return getattr(importlib.import_module(module), name)(*args, **kwargs)


def _callable_module(module_name: str, api_function: str) -> None:
    """Make module ``module_name`` callable as :mod:`wmkit.api`'s ``api_function``."""
    module = sys.modules[module_name]
    module.__class__ = _CallableModule
    module._wmkit_api_call = ("wmkit.api", api_function)


def __getattr__(name: str):
    if name in _FACADE:
        return getattr(importlib.import_module(_FACADE[name]), name)
    if name in _CALLABLE_MODULES:
        return importlib.import_module(f"wmkit.{name}")
    raise AttributeError(f"module 'wmkit' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_FACADE) | set(_CALLABLE_MODULES))


__all__ = ["__version__", "hookimpl", "load_recipe", "train", "audit", "sweep", "export", "load"]

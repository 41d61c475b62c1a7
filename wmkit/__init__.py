"""wmkit: train and audit tiny JEPA world models of transitions.

Import-light on purpose: ``import wmkit`` pulls in neither torch nor datasets.
"""

import pluggy

__version__ = "0.1.0"

#: decorate plugin hook implementations with this (``@wmkit.hookimpl``)
hookimpl = pluggy.HookimplMarker("wmkit")

__all__ = ["__version__", "hookimpl"]

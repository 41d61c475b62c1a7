"""Hook specifications, one per row of :data:`wmkit.kinds.KINDS`. Every hook receives a
``register`` callback, as in llm.

Described in full in docs/plugins.md#2-registration-pluginpy.
"""

import pluggy

from wmkit.kinds import KINDS

hookspec = pluggy.HookspecMarker("wmkit")


def _spec(kind):
    def spec(register):
        pass

    spec.__name__ = spec.__qualname__ = kind.hook
    spec.__doc__ = f"Register {kind.label} components ({kind.summary}); subclasses of {kind.base}."
    return hookspec(spec)


for _kind in KINDS:
    globals()[_kind.hook] = _spec(_kind)
del _kind

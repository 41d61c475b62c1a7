"""Hook specifications, one per row of :data:`wmkit.kinds.KINDS`. Every hook receives a
``register`` callback, as in llm.

A plugin implements any of these with ``@wmkit.hookimpl`` and calls ``register`` once per named
implementation::

    @wmkit.hookimpl
    def wmkit_register_domains(register):
        register("toy", "my_package.domain:ToyDomain", description="...")

``register(name, target, *, options=None, description="", **info)``:

- ``name``: what recipes and ``--domain`` use; unique per kind across all plugins.
- ``target``: the class itself, or ``"module:attribute"`` imported only when the component is
  built (keeps ``wmkit plugins`` and ``wmkit recipe show`` free of torch imports).
- ``options``: the component's options, a :class:`wmkit.options.Options` class of
  :class:`wmkit.schema.Field` attributes (or, as before typed options, a ``{key: Field}`` dict,
  which the host turns into one); defaults to the target class's ``options`` attribute when the
  target is a class.
- ``description``: one line for ``wmkit plugins``.
- ``info``: extra facts for the host. Domains may pass ``default_source`` and ``default_recipe``.

The hooks (generated from the kinds table): ``wmkit_register_domains``,
``wmkit_register_encoders``, ``wmkit_register_action_encoders``, ``wmkit_register_predictors``,
``wmkit_register_regularizers``, ``wmkit_register_aux_losses``, ``wmkit_register_pred_costs``,
``wmkit_register_loggers``.

Only :class:`wmkit.plugins.PluginHost` calls these hooks.
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

"""Hook specifications. Every hook receives a ``register`` callback, as in llm.

A plugin implements any of these with ``@wmkit.hookimpl`` and calls ``register`` once per named
implementation::

    @wmkit.hookimpl
    def wmkit_register_domains(register):
        register("toy", "my_package.domain:ToyDomain", description="...")

``register(name, target, *, options=None, description="", **info)``:

- ``name``: what recipes and ``--domain`` use; unique per kind across all plugins.
- ``target``: the class itself, or ``"module:attribute"`` imported only when the component is
  built (keeps ``wmkit plugins`` and ``wmkit recipe show`` free of torch imports).
- ``options``: the component's recipe schema ``{key: wmkit.schema.Field}``; defaults to the
  target class's ``options`` attribute when the target is a class.
- ``description``: one line for ``wmkit plugins``.
- ``info``: extra facts for the host. Domains may pass ``default_source`` and ``default_recipe``.

Only :class:`wmkit.plugins.PluginHost` calls these hooks.
"""

import pluggy

hookspec = pluggy.HookspecMarker("wmkit")


@hookspec
def wmkit_register_domains(register):
    """Register domains (subclasses of :class:`wmkit.domain.Domain`)."""


@hookspec
def wmkit_register_encoders(register):
    """Register state encoders (subclasses of :class:`wmkit.components.Encoder`)."""


@hookspec
def wmkit_register_predictors(register):
    """Register latent predictors (subclasses of :class:`wmkit.components.Predictor`)."""


@hookspec
def wmkit_register_regularizers(register):
    """Register embedding regularizers (subclasses of :class:`wmkit.components.Regularizer`)."""


@hookspec
def wmkit_register_aux_losses(register):
    """Register auxiliary losses (subclasses of :class:`wmkit.components.AuxLoss`)."""

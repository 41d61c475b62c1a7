"""Glue shared by train, audit and bench: recipe -> domain -> prepared data, and device choice."""

from __future__ import annotations

from typing import Mapping

from wmkit.errors import RecipeError


def _values(recipe) -> Mapping:
    """The nested values of a :class:`wmkit.recipe.Recipe`, or the mapping itself."""
    return recipe if isinstance(recipe, Mapping) else recipe.values


def _options(recipe):
    """The typed values (:class:`wmkit.recipe.RecipeOptions`) of a recipe or of its values."""
    from wmkit.recipe import RecipeOptions

    return RecipeOptions.of(_values(recipe))


def make_domain(recipe, host=None):
    """Build the recipe's domain with its own ``[data]`` options."""
    if host is None:
        from wmkit.plugins import get_host

        host = get_host()
    data = _options(recipe).data
    component = host.get("domain", data.domain)
    return host.domain(data.domain, {key: data[key] for key in component.options if key in data})


def check_action_inputs(recipe, domain_class, host) -> None:
    """Refuse an action encoder that reads inputs the domain does not offer
    (:attr:`wmkit.domain.Domain.action_inputs`), before any data is prepared or written."""
    name = _options(recipe).model.action.name
    component = host.get("action_encoder", name)
    wanted = tuple(component.info.get("inputs") or getattr(component.load(), "inputs", ("vector",)))
    offered = tuple(getattr(domain_class, "action_inputs", ("vector",)))
    missing = [i for i in wanted if i not in offered]
    if missing:
        usable = [n for n in host.names("action_encoder")
                  if all(i in offered for i in host.get("action_encoder", n).info.get("inputs", ("vector",)))]
        raise RecipeError(f"model.action.name: action encoder {name!r} reads {', '.join(missing)}, which domain "
                          f"{getattr(domain_class, 'name', '?')!r} does not offer (it offers {', '.join(offered)}); "
                          f"choices: {', '.join(usable) or 'none'}")
def domain_plugin_id(recipe, host=None) -> str:
    """``distribution==version`` of the plugin that registered the recipe's domain (prepared-data
    cache key: upgrading the plugin rebuilds its data)."""
    if host is None:
        from wmkit.plugins import get_host

        host = get_host()
    component = host.get("domain", _options(recipe).data.domain)
    return f"{component.distribution or component.plugin}=={component.version}"


def resolve_source(recipe, domain, source: str | None = None) -> str:
    """The data source to read: ``source`` (``--data``), else the recipe's; ``default`` -> the domain's."""
    chosen = source or _options(recipe).data.source
    if chosen == "default":
        chosen = domain.default_source
        if not chosen:
            raise RecipeError(f"data.source: domain {domain.name!r} has no embedded default; pass --data")
    return chosen


def load_data(recipe, *, source: str | None = None, host=None, progress: bool = True, cache_dir=None):
    """``(domain, PreparedData)`` for a recipe (cached on disk by :func:`wmkit.prepare.prepare`)."""
    from wmkit.prepare import prepare

    domain = make_domain(recipe, host)
    data = _options(recipe).data
    prepared = prepare(domain, resolve_source(recipe, domain, source), max_len=data.max_len,
                       window=data.window, max_chars=data.max_chars,
                       min_changed_tokens=data.min_changed_tokens, val_percent=data.val_percent,
                       keep_unchanged=data.keep_unchanged, holdout_repos=tuple(data.holdout_repos),
                       limit=data.limit, cache_dir=cache_dir, progress=progress,
                       plugin=domain_plugin_id(recipe, host))
    return domain, prepared


def pick_device(name: str):
    """The torch device ``train.device`` names, checked against what this machine has."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise RecipeError(f"train.device: {name!r} is not a device torch knows; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RecipeError(f"train.device: {name!r} asked for but CUDA is not available; use cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RecipeError(f"train.device: {name!r} but this machine has {torch.cuda.device_count()} CUDA "
                              f"device(s) (cuda:0..cuda:{torch.cuda.device_count() - 1})")
    elif device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise RecipeError(f"train.device: {name!r} asked for but MPS is not available; use cpu or auto")
    elif device.type == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        raise RecipeError(f"train.device: {name!r} asked for but no XPU is available; use cpu or auto")
    return device

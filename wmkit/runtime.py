"""Glue shared by train, audit and bench: recipe -> domain -> prepared data, and device choice."""

from __future__ import annotations

from typing import Mapping

from wmkit.errors import RecipeError


def _values(recipe) -> Mapping:
    """The nested values of a :class:`wmkit.recipe.Recipe`, or the mapping itself."""
    return recipe if isinstance(recipe, Mapping) else recipe.values


def make_domain(recipe, host=None):
    """Build the recipe's domain with its own ``[data]`` options."""
    if host is None:
        from wmkit.plugins import get_host

        host = get_host()
    data = _values(recipe)["data"]
    component = host.get("domain", data["domain"])
    options = {key: data[key] for key in component.options if key in data}
    return host.domain(data["domain"], options)


def resolve_source(recipe, domain, source: str | None = None) -> str:
    """The data source to read: ``source`` (``--data``), else the recipe's; ``default`` -> the domain's."""
    chosen = source or _values(recipe)["data"]["source"]
    if chosen == "default":
        chosen = domain.default_source
        if not chosen:
            raise RecipeError(f"data.source: domain {domain.name!r} has no embedded default; pass --data")
    return chosen


def load_data(recipe, *, source: str | None = None, host=None, progress: bool = True, cache_dir=None):
    """``(domain, PreparedData)`` for a recipe (cached on disk by :func:`wmkit.prepare.prepare`)."""
    from wmkit.prepare import prepare

    domain = make_domain(recipe, host)
    data = _values(recipe)["data"]
    prepared = prepare(domain, resolve_source(recipe, domain, source), max_len=data["max_len"],
                       window=data["window"], max_chars=data["max_chars"],
                       min_changed_tokens=data["min_changed_tokens"], val_percent=data["val_percent"],
                       keep_unchanged=bool(data.get("keep_unchanged", False)),
                       limit=data["limit"], cache_dir=cache_dir, progress=progress)
    return domain, prepared


def pick_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RecipeError(f"train.device: {name!r} asked for but CUDA is not available; use cpu or auto")
    return torch.device(name)

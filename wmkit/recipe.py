"""TOML recipes: the core schema, plugin sub-schemas, overrides and the paper's environment variables.

Resolution order (later wins): the recipe file (and the recipe it ``extends``) < ``WM_*``
environment variables < ``--set key=value`` overrides. After merging, the components the recipe
names (domain, encoder, predictor, aux loss, regularizer, prediction cost, ...) contribute their own
option schemas, and the whole recipe is validated: an unknown key or a wrong type raises
:class:`~wmkit.errors.RecipeError` with the dotted path and a close-match suggestion.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from wmkit import kinds
from wmkit.errors import PluginError, RecipeError
from wmkit.schema import Field, validate

# The core sections, typed, and the component keys (wmkit.sections); importable from here too
from wmkit.sections import (CORE_SCHEMA, DEPRECATED_KEYS, DEVICE_PATTERN, ActionOptions,  # noqa: E402,F401
                            AuxLossOptions, CovLossOptions, DataOptions, DirLossOptions, EncoderOptions,
                            EvalOptions, LossOptions, MagLossOptions, MetaOptions, ModelOptions, OptimOptions,
                            PredictorOptions, PredLossOptions, ProjectorOptions, RecipeOptions,
                            RegularizerOptions, TargetOptions, TrainOptions, _physical_memory, memory_lower_bound)

# ---------------------------------------------------------------------------------------------
# The paper's environment variables (reference §9, docs/reference.md#s9) that map onto recipe keys.
# ---------------------------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    return [int(part) for part in text.replace(" ", "").split(",") if part]


def _flag(text: str) -> bool:
    if text.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if text.strip().lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


_AUX_TYPES = {"contrast": "ntxent", "pred": "pred", "cos_align": "cos_align", "none": "none", "ntxent": "ntxent"}

#: WM_* variable -> (recipe key, converter, note)
ENV_VARS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "WM_SEED": ("meta.seed", int, ""),
    "WM_MAX_SEQ_LEN": ("data.max_len", int, ""),
    "WM_VAL_FRAC": ("data.val_percent", lambda v: int(round(float(v) * 100)), "fraction → percent; "
                    "applies only to data without a split column"),
    "WM_MODEL_DIM": ("model.dim", int, ""),
    "WM_NUM_HEADS": ("model.heads", int, ""),
    "WM_MLP_RATIO": ("model.mlp_ratio", int, ""),
    "WM_DROPOUT": ("model.dropout", float, ""),
    "WM_ENCODER_LOOPS": ("model.encoder.loops", int, ""),
    "WM_POOL_MODE": ("model.encoder.pool", str, ""),
    "WM_MASK_PADDING": ("model.encoder.mask_padding", _flag, ""),
    "WM_NUM_LOOPS": ("model.predictor.loops", int, "predictor loops per block"),
    "WM_PREDICTOR_DEPTH": ("model.predictor.blocks", int, ""),
    "WM_USE_PROJECTOR": ("model.projector.enabled", _flag, ""),
    "WM_EMA_DECAY": ("model.target.ema_decay", float, ""),
    "WM_LAMBDA_PRED": ("loss.pred.weight", float, ""),
    "WM_LAMBDA_DIR": ("loss.dir.weight", float, ""),
    "WM_LAMBDA_MAG": ("loss.mag.weight", float, ""),
    "WM_LAMBDA_COV": ("loss.cov.weight", float, ""),
    "WM_AUX_TYPE": ("loss.aux.name", lambda v: _AUX_TYPES.get(v, v), "contrast → ntxent"),
    "WM_AUX_LOOPS": ("loss.aux.loops", _int_list, "comma-separated, e.g. 1,2"),
    "WM_LAMBDA_AUX": ("loss.aux.weight", float, ""),
    "WM_CONTRAST_TEMPERATURE": ("loss.aux.temperature", float, "ntxent only"),
    "WM_CONTRAST_POS_THRESHOLD": ("loss.aux.pos_threshold", float, "ntxent only"),
    "WM_REG_MODE": ("regularizer.name", str, "none, vicreg or sigreg"),
    "WM_SIGREG_WEIGHT": ("regularizer.weight", float, "weights whichever regularizer is selected"),
    "WM_LR": ("optim.lr", float, ""),
    "WM_BATCH_SIZE": ("optim.batch_size", int, ""),
    "WM_WARMUP_STEPS": ("optim.warmup_steps", int, ""),
    "WM_STEPS": ("train.steps", int, ""),
    "WM_EVAL_INTERVAL": ("train.eval_every", int, ""),
    "WM_SAVE_INTERVAL": ("train.save_every", int, ""),
}


# ---------------------------------------------------------------------------------------------
# Recipe objects
# ---------------------------------------------------------------------------------------------


@dataclass
class Recipe:
    """A resolved, validated recipe: a nested dict of checked values plus where it came from."""

    values: dict
    origin: str
    overrides: list[str]
    env: dict[str, str]
    #: one line per deprecated key the recipe used (shown by the CLI)
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    @property
    def options(self) -> RecipeOptions:
        """The values as typed records: ``recipe.options.optim.lr``."""
        return RecipeOptions.of(self.values)

    def get(self, dotted: str) -> Any:
        node: Any = self.values
        for part in dotted.split("."):
            node = node[part]
        return node

    def to_dict(self) -> dict:
        return copy.deepcopy(self.values)

    def to_toml(self) -> str:
        return dump_toml(self.values)

    def digest(self, length: int = 8) -> str:
        """A short hash of the resolved values that shape the run (run-directory names): observers
        such as loggers are left out (:func:`experiment_values`)."""
        blob = json.dumps(experiment_values(self.values), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:length]


def experiment_values(values: Mapping) -> dict:
    """``values`` without the keys of observer kinds (loggers: ``train.loggers`` and ``[logger.*]``):
    what a run's digest and ``--resume`` compare, so that adding a logger neither renames nor
    refuses a run."""
    out = copy.deepcopy(dict(values))
    for kind in kinds.KINDS:
        if not kind.observer:
            continue
        *parents, leaf = kind.path.split(".")
        node = get_dotted(out, ".".join(parents))
        if isinstance(node, dict):
            node.pop(leaf, None)
        if kind.many:
            out.pop(kind.options_section, None)
    return out


def shipped_recipes() -> dict[str, Path]:
    """Name -> path of every recipe shipped in the ``recipes/`` package."""
    root = resources.files("wmkit_recipes")
    return {Path(p.name).stem: Path(str(p)) for p in root.iterdir() if p.name.endswith(".toml")}


def find_recipe(name_or_path: str) -> Path:
    """A recipe path from a path or a shipped recipe name; a clear error otherwise."""
    path = Path(name_or_path)
    try:
        if path.is_file():
            return path
    except (OSError, ValueError):  # a NUL byte or an over-long name: not a path
        raise RecipeError(f"recipe {name_or_path!r}: not a usable path or recipe name") from None
    shipped = shipped_recipes()
    stem = path.stem if path.suffix == ".toml" else name_or_path
    if stem in shipped and (path.suffix == "" or not path.exists()):
        return shipped[stem]
    match = difflib.get_close_matches(stem, list(shipped), n=1, cutoff=0.5)
    hint = f" (did you mean {match[0]!r}?)" if match else ""
    raise RecipeError(f"recipe {name_or_path!r} not found: not a file and not a shipped recipe{hint}; "
                      f"`wmkit recipes` lists them")


def read_toml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read recipe: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{path}: not a UTF-8 text file (byte {exc.start} is {exc.object[exc.start:exc.start + 1]!r}); "
                          f"recipes are TOML text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: invalid TOML: {exc}") from None


def _extends_path(path: Path, base_name: str) -> Path:
    """``meta.extends`` of the recipe at ``path``: a path relative to that recipe's folder (or
    absolute), else a shipped recipe name."""
    beside = Path(path).parent / Path(base_name).expanduser()
    try:
        if beside.is_file():
            return beside
    except (OSError, ValueError):
        raise RecipeError(f"{path}: meta.extends {base_name!r} is not a usable path or recipe name") from None
    try:
        return find_recipe(base_name)
    except RecipeError as exc:
        raise RecipeError(f"{path}: meta.extends: {exc}") from None


def _raw_recipe(path: Path, seen: tuple = (), notes: list | None = None) -> dict:
    raw = read_toml(path)
    # renamed keys are moved file by file, so a recipe's old key still overrides what it extends
    for note in migrate_deprecated(raw) if isinstance(raw, dict) else ():
        if notes is not None:
            notes.append(f"{path.name}: {note}")
    base_name = raw.get("meta", {}).get("extends", "") if isinstance(raw.get("meta"), dict) else ""
    if not isinstance(base_name, str):
        raise RecipeError(f"{path}: meta.extends: expected a string (a shipped recipe name or a path), got "
                          f"{type(base_name).__name__} {base_name!r}")
    if base_name:
        base_path = _extends_path(path, base_name)
        if base_path.resolve() in seen:
            raise RecipeError(f"{path}: meta.extends forms a cycle through {base_path}")
        base = _raw_recipe(base_path, seen + (path.resolve(),), notes)
        base.get("meta", {}).pop("description", None)
        raw = deep_merge(base, raw)
    return raw


def deep_merge(base: dict, update: Mapping) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise RecipeError(f"{'.'.join(parts[:i + 1])}: is a value, not a table; cannot set {dotted}")
        node = child
    node[parts[-1]] = value


def get_dotted(tree: Mapping, dotted: str, default: Any = None) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def parse_override(text: str) -> tuple[str, Any]:
    """``a.b=v`` -> ("a.b", v) with v parsed as a TOML value (bare words become strings)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise RecipeError(f"--set {text!r}: expected KEY=VALUE, e.g. --set model.encoder.loops=4")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word: treat as a string
    return key, value


def environment_overrides(environ: Mapping[str, str] | None = None) -> dict[str, tuple[str, Any]]:
    """``{VAR: (recipe key, value)}`` for every set ``WM_*`` variable we map."""
    environ = os.environ if environ is None else environ
    out = {}
    for var, (key, convert, _note) in ENV_VARS.items():
        if var in environ:
            try:
                out[var] = (key, convert(environ[var]))
            except (ValueError, OverflowError, TypeError) as exc:
                raise RecipeError(f"environment variable {var}={environ[var]!r} (for {key}): {exc}") from None
    return out


def apply_overrides(raw: dict, overrides, environ: Mapping[str, str] | None, notes: list | None = None) -> dict:
    """Apply the ``WM_*`` variables, then the ``--set`` overrides, to ``raw`` in place (later wins;
    a renamed key is set under its new name, with a note); returns the variables applied (see
    :func:`environment_overrides`)."""
    env = environment_overrides(environ)
    for _var, (key, value) in env.items():
        set_dotted(raw, key, value)
    for text in overrides:
        key, value = parse_override(text)
        if key in DEPRECATED_KEYS:
            if notes is not None:
                notes.append(f"--set {key}: {key} is deprecated; call it {DEPRECATED_KEYS[key]}")
            key = DEPRECATED_KEYS[key]
        set_dotted(raw, key, value)
    return env


def build_schema(raw: Mapping, host) -> dict:
    """The core schema plus the option schemas of the components ``raw`` names."""
    schema = copy.deepcopy(CORE_SCHEMA)
    for kind in kinds.KINDS:
        chosen = kind.chosen(raw)
        if kind.many:
            if not isinstance(chosen, (list, tuple)) or not all(isinstance(n, str) for n in chosen):
                continue  # validation reports the type error
            for name in kind.names(raw):
                _add_options(schema, kind, name, host)
        elif isinstance(chosen, str):  # otherwise validation reports the type error
            _add_options(schema, kind, chosen, host)
    return schema


def _add_options(schema: dict, kind, name: str, host) -> None:
    """Merge the option schema of component ``name`` of ``kind`` into its table of ``schema``."""
    try:
        component = host.get(kind.name, name)  # the error lists the available names
    except PluginError as exc:
        raise RecipeError(f"{kind.path}: {exc}") from None
    if kind.many and not component.options:
        return  # no table for a component without options
    section = schema
    for part in kind.options_path(name).split("."):
        section = section.setdefault(part, {})
    for key, field in component.options.items():
        if key in section and isinstance(section[key], Field) and key != kind.key:
            section[key] = field  # a plugin may refine a core field's default or help
        elif key not in section:
            section[key] = field


def load_recipe(source: str | Path | None, *, overrides: list[str] = (), domain: str | None = None,
                environ: Mapping[str, str] | None = None, host=None) -> Recipe:
    """Load, merge and validate a recipe.

    ``source`` is a path or shipped recipe name; ``None`` means the domain's default recipe
    (``domain`` or ``code``). ``domain`` (the ``--domain`` flag) sets ``data.domain``.
    """
    if host is None:
        from wmkit.plugins import get_host

        host = get_host()
    if source is None:
        domain_name = domain or "code"
        component = host.get("domain", domain_name)
        source = component.info.get("default_recipe") or ""
        if not source:
            raise RecipeError(f"domain {domain_name!r} has no default recipe; pass a recipe file")
    path = find_recipe(str(source))
    notes: list[str] = []
    raw = _raw_recipe(path, notes=notes)
    env = apply_overrides(raw, overrides, environ, notes)
    if domain is not None:
        set_dotted(raw, "data.domain", domain)
    if not isinstance(raw.get("meta", {}), Mapping):
        raise RecipeError(f"{path}: meta must be a table")
    try:
        schema = build_schema(raw, host)
        values = validate(schema, raw)
        RecipeOptions.of(values).check()
    except RecipeError as exc:
        raise _name_env_source(exc, env) from None
    return Recipe(values=values, origin=str(path), overrides=list(overrides),
                  env={var: str(v[1]) for var, v in env.items()}, notes=notes)


def migrate_deprecated(raw: dict) -> list[str]:
    """Move every :data:`DEPRECATED_KEYS` key of ``raw`` to its new name, in place; one note each."""
    notes = []
    for old, new in DEPRECATED_KEYS.items():
        *parents, leaf = old.split(".")
        node = get_dotted(raw, ".".join(parents))
        if not isinstance(node, dict) or leaf not in node:
            continue
        value = node.pop(leaf)
        current = get_dotted(raw, new)
        if current is not None and current != value:
            raise RecipeError(f"{old} = {value!r} and {new} = {current!r} disagree; {old} is the old name of "
                              f"{new}: keep only {new}")
        set_dotted(raw, new, value)
        notes.append(f"{old} is deprecated; call it {new}")
    return notes


def _name_env_source(exc: RecipeError, env: Mapping[str, tuple[str, Any]]) -> RecipeError:
    """``exc`` with ``(from WM_X=...)`` appended when its key was set by an environment variable."""
    text = str(exc)
    key = text.split(":", 1)[0].split("[", 1)[0]
    for var, (env_key, value) in env.items():
        if env_key == key or re.search(rf"(?<![\w.]){re.escape(env_key)}(?![\w.])", text):
            return RecipeError(f"{exc} (from the environment variable {var}={value!r}; unset it or fix it)")
    return exc


def recipe_over_run(values: Mapping, *, overrides: list[str] = (), environ: Mapping[str, str] | None = None,
                    host=None, origin: str = "config.json") -> Recipe:
    """A run's recorded recipe with ``WM_*`` variables and ``--set`` overrides applied, validated
    (what ``--resume RUN`` compares with the run's own recipe)."""
    if host is None:
        from wmkit.plugins import get_host

        host = get_host()
    raw = copy.deepcopy(dict(values))
    notes = migrate_deprecated(raw)  # runs recorded before a key was renamed
    env = apply_overrides(raw, overrides, environ, notes)
    try:
        values = validate(build_schema(raw, host), raw)
        RecipeOptions.of(values).check()
    except RecipeError as exc:
        raise _name_env_source(exc, env) from None
    return Recipe(values=values, origin=origin, overrides=list(overrides),
                  env={var: str(v[1]) for var, v in env.items()}, notes=notes)


def recipe_from_dict(values: Mapping, host=None) -> Recipe:
    """Re-validate an already resolved recipe (e.g. from a checkpoint's config.json)."""
    if host is None:
        from wmkit.plugins import get_host

        host = get_host()
    # loggers only watched the run: one that is no longer installed must not stop its model from loading
    values = experiment_values(values)
    notes = migrate_deprecated(values)
    schema = build_schema(values, host)
    return Recipe(values=validate(schema, values), origin="config.json", overrides=[], env={}, notes=notes)


def describe_recipe(path: Path) -> str:
    try:
        raw = _raw_recipe(path)
    except RecipeError as exc:
        return f"(invalid: {exc})"
    return str(raw.get("meta", {}).get("description", ""))


# ---------------------------------------------------------------------------------------------
# TOML output (tomllib reads only; tomli-w writes)
# ---------------------------------------------------------------------------------------------


def dump_toml(tree: Mapping) -> str:
    """``tree`` as TOML text that :mod:`tomllib` reads back equal (``wmkit recipe show``)."""
    import tomli_w

    return tomli_w.dumps(tree)


def toml_value(value: Any) -> str:
    """One value as an inline TOML literal (``--set key=VALUE`` texts): lists stay on one line."""
    import tomli_w

    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).strip()[len("v = "):]

"""The plan of a sweep: a grid of recipe overrides × seeds, the steps, the checkpoints to audit.

Described in full in docs/scale.md#sweeps.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from wmkit.errors import RecipeError, RunError

SWEEP_FORMAT = "wmkit-sweep/1"
SWEEP_FILE = "sweep.json"
#: audit labels besides step numbers: the run's best checkpoint, its final one
CHECKPOINT_LABELS = ("best", "last")
#: keys a [sweep] table may hold
SWEEP_KEYS = ("recipe", "grid", "seeds", "steps", "audit_at", "set", "data", "domain", "val_size", "full_val", "tier")


@dataclass
class Plan:
    """What a sweep runs. ``grid`` is ordered: ``[(dotted key, [values…]), …]``."""

    recipe: str
    grid: list = field(default_factory=list)
    seeds: list = field(default_factory=list)
    steps: int | None = None
    audit_at: list = field(default_factory=lambda: ["last"])
    overrides: list = field(default_factory=list)
    domain: str | None = None
    val_size: int | None = None
    full_val: bool = False
    tier: str | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["grid"] = [[k, list(v)] for k, v in self.grid]
        return out

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:10]


# ---------------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------------


def split_values(text: str) -> list[str]:
    """Split ``a,b,[1,2],"x,y"`` at the commas outside brackets, braces and quotes."""
    parts, depth, quote, current = [], 0, None, ""
    for ch in text:
        if quote:
            current += ch
            if ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        current += ch
    parts.append(current.strip())
    return parts


def parse_grid_option(text: str) -> tuple[str, list]:
    """``--grid KEY=V1,V2`` -> (KEY, [typed values]) with the ``--set`` grammar."""
    from wmkit.recipe import parse_override

    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise RecipeError(f"--grid {text!r}: expected KEY=V1,V2,…, e.g. --grid loss.aux.weight=0.1,0.3")
    values = split_values(raw) if raw.strip() else []
    if not values or any(v == "" for v in values):
        raise RecipeError(f"--grid {key}: empty value list; give at least one value, e.g. --grid {key}=V1,V2")
    return key, [parse_override(f"{key}={v}")[1] for v in values]


def parse_seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in split_values(text)]
    except ValueError:
        raise RecipeError(f"--seeds {text!r}: expected integers separated by commas, e.g. --seeds 42,43,44") from None


def parse_audit_at(text: str) -> list:
    out = []
    for part in split_values(text):
        if part in CHECKPOINT_LABELS:
            out.append(part)
            continue
        try:
            out.append(int(part))
        except ValueError:
            raise RecipeError(f"--audit-at {text!r}: {part!r} is not a step number, 'best' or 'last'; "
                              f"e.g. --audit-at 200,400,best") from None
    return out


def read_sweep_file(path: Path) -> dict | None:
    """The ``[sweep]`` table of ``path`` (a TOML file), or ``None`` when it has none (a plain recipe)."""
    if path.suffix != ".toml" or not path.is_file():
        return None
    try:
        body = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: not valid TOML ({exc})") from None
    table = body.get("sweep")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise RecipeError(f"{path}: [sweep] must be a table")
    unknown = sorted(set(table) - set(SWEEP_KEYS))
    if unknown:
        hint = difflib.get_close_matches(unknown[0], SWEEP_KEYS, n=1)
        raise RecipeError(f"{path}: sweep.{unknown[0]} is not a sweep key" + (f"; did you mean sweep.{hint[0]}?" if hint
                          else f" (keys: {', '.join(SWEEP_KEYS)})"))
    if "recipe" not in table:
        raise RecipeError(f"{path}: [sweep] needs recipe = \"NAME_OR_PATH\"")
    recipe = str(table["recipe"])
    if recipe.endswith(".toml") and not Path(recipe).is_absolute() and (path.parent / recipe).exists():
        recipe = str(path.parent / recipe)  # a recipe path is relative to the sweep file
    table = dict(table, recipe=recipe)
    grid = table.get("grid", {})
    if not isinstance(grid, dict):
        raise RecipeError(f"{path}: sweep.grid must be a table of KEY = [values]")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise RecipeError(f"{path}: sweep.grid.{key} must be a non-empty list of values")
    return table


def build_plan(recipe: str, *, grid_options=(), seeds: str | None = None, steps: int | None = None,
               audit_at: str | None = None, overrides=(), data: str | None = None, domain: str | None = None,
               val_size: int | None = None, full_val: bool = False, tier: str | None = None) -> Plan:
    """A plan from the command line; ``recipe`` may be a sweep file, whose values the flags override."""
    table = read_sweep_file(Path(recipe)) or {}
    grid: dict[str, list] = {k: list(v) for k, v in (table.get("grid") or {}).items()}
    for text in grid_options:
        key, values = parse_grid_option(text)
        grid[key] = values  # a flag replaces the file's values of that key
    plan_seeds = parse_seeds(seeds) if seeds is not None else [int(s) for s in table.get("seeds", [])]
    base = [str(s) for s in table.get("set", [])] + list(overrides)
    source = data if data is not None else table.get("data")
    if source is not None:
        base.append(f"data.source={json.dumps(source)}")
    at = parse_audit_at(audit_at) if audit_at is not None else table.get("audit_at", ["last"])
    return Plan(recipe=table.get("recipe", recipe), grid=list(grid.items()), seeds=plan_seeds,
                steps=steps if steps is not None else table.get("steps"), audit_at=list(at), overrides=base,
                domain=domain if domain is not None else table.get("domain"),
                val_size=val_size if val_size is not None else table.get("val_size"),
                full_val=bool(full_val or table.get("full_val", False)),
                tier=tier if tier is not None else table.get("tier"))


# ---------------------------------------------------------------------------------------------
# the runs of a plan, validated
# ---------------------------------------------------------------------------------------------


def _dotted_keys(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in tree.items():
        keys += _dotted_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
    return keys


def _set_text(key: str, value: Any) -> str:
    from wmkit.recipe import toml_value

    return f"{key}={toml_value(value)}"


def _label(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def run_id(index: int, point: dict, seed: int) -> str:
    """A run directory name that says what the run is: ``03-weight=0.1_loops=2-seed42``."""
    body = "_".join(f"{k.split('.')[-1]}={_label(v)}" for k, v in point.items()) or "base"
    return re.sub(r"[^A-Za-z0-9._=+-]", "", f"{index:02d}-{body}")[:80] + f"-seed{seed}"


def validate(plan: Plan, host) -> list[dict]:
    """Resolve every run of ``plan``; returns the runs (id, point, seed, overrides, recipe values).

    Raises :class:`RecipeError` with one line naming the bad grid key, value, seed or audit step.
    """
    from wmkit.recipe import get_dotted, load_recipe

    if plan.domain is not None:
        host.get("domain", plan.domain)
    base = load_recipe(plan.recipe, overrides=list(plan.overrides), domain=plan.domain, host=host)
    keys = _dotted_keys(base.values)
    seeds = plan.seeds or [base.options.meta.seed]
    duplicates = sorted({s for s in seeds if seeds.count(s) > 1})
    if duplicates:
        raise RecipeError(f"--seeds: {', '.join(map(str, duplicates))} listed more than once; give each seed once")
    if not plan.grid and len(seeds) < 2:
        raise RecipeError("nothing to sweep: the grid is empty and there is one seed; add --grid KEY=V1,V2 "
                          "or --seeds A,B")
    for key, values in plan.grid:
        if key == "meta.seed":
            raise RecipeError("--grid meta.seed: seeds are not a grid key; use --seeds 42,43,44")
        if key == "train.steps" and plan.steps is not None:
            raise RecipeError("--grid train.steps and --steps both set the steps; give one of them")
        if get_dotted(base.values, key, _MISSING) is _MISSING:
            hint = difflib.get_close_matches(key, keys, n=1)
            raise RecipeError(f"--grid {key}: not a key of recipe {base.options.meta.name}"
                              + (f"; did you mean {hint[0]}?" if hint else "; `wmkit recipe keys RECIPE` lists them"))
        if not values:
            raise RecipeError(f"--grid {key}: empty value list; give at least one value")
        dup = [v for i, v in enumerate(values) if v in values[:i]]
        if dup:
            raise RecipeError(f"--grid {key}: value {_label(dup[0])} listed more than once")
        for value in values:
            try:
                load_recipe(plan.recipe, overrides=[*plan.overrides, _set_text(key, value)], domain=plan.domain,
                            host=host)
            except RecipeError as exc:
                raise RecipeError(f"--grid {key}={_label(value)}: {exc}") from None
    steps_override = [f"train.steps={plan.steps}"] if plan.steps is not None else []
    runs = []
    points = list(itertools.product(*[values for _, values in plan.grid])) if plan.grid else [()]
    for index, combo in enumerate(points):
        point = {key: value for (key, _), value in zip(plan.grid, combo)}
        for seed in seeds:
            overrides = [*plan.overrides, *steps_override, *(_set_text(k, v) for k, v in point.items()),
                         f"meta.seed={seed}"]
            try:
                recipe = load_recipe(plan.recipe, overrides=overrides, domain=plan.domain, host=host)
            except RecipeError as exc:
                raise RecipeError(f"grid point {point}: {exc}") from None
            total = recipe.options.train.steps
            for at in plan.audit_at:
                if isinstance(at, int) and not 1 <= at <= total:
                    raise RecipeError(f"--audit-at {at}: outside 1..{total} (train.steps of run {point or 'base'}); "
                                      f"lower it or raise --steps")
            runs.append({"id": run_id(index, point, seed), "point": point, "point_index": index, "seed": seed,
                         "overrides": overrides, "steps": total, "recipe": recipe.values,
                         "origin": recipe.origin, "env": recipe.env})
    return runs


_MISSING = object()


def tier_of(steps: int, plan_tier: str | None = None) -> str:
    """The run's tier: the plan's, else named by its length as the reference names its tiers
    (smoke 400 steps, screen 2K, medium up to 8K, promotion beyond)."""
    if plan_tier:
        return plan_tier
    if steps <= 400:
        return "smoke"
    if steps <= 2000:
        return "screen"
    return "medium" if steps <= 8000 else "promotion"


def audit_targets(plan_audit_at: list, steps: int) -> tuple[list[int], list[str]]:
    """Steps to stop at (ascending, always ending at ``steps``) and the audit labels wanted."""
    labels = []
    for at in plan_audit_at:
        label = f"step-{steps}" if at == "last" else ("best" if at == "best" else f"step-{at}")
        if label not in labels:
            labels.append(label)
    stops = sorted({int(lbl.split("-")[1]) for lbl in labels if lbl.startswith("step-")} | {steps})
    return stops, labels


# ---------------------------------------------------------------------------------------------
# sweep.json
# ---------------------------------------------------------------------------------------------


def _flat(tree: Any, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def plan_differences(a: dict, b: dict) -> list[str]:
    fa, fb = _flat(a), _flat(b)
    return sorted(k for k in set(fa) | set(fb) if fa.get(k, _MISSING) != fb.get(k, _MISSING))


def default_sweep_dir(plan: Plan, runs: list[dict]) -> Path:
    return Path("sweeps") / f"{runs[0]['recipe']['meta']['name']}_{plan.digest()}"


def open_sweep(sweep_dir: Path, plan: Plan, runs: list[dict]) -> dict:
    """The sweep's state: a fresh one, or the saved one when its plan is this plan.

    A different saved plan is refused with the differing keys; nothing is written here.
    """
    path = sweep_dir / SWEEP_FILE
    fresh = {"format": SWEEP_FORMAT, "plan": plan.to_dict(), "plan_digest": plan.digest(),
             "runs": {r["id"]: {"state": "pending", "point": r["point"], "point_index": r["point_index"],
                                "seed": r["seed"], "steps": r["steps"], "dir": r["id"], "audits": {},
                                "step": 0, "error": None} for r in runs}}
    if not path.exists():
        if sweep_dir.exists() and any(sweep_dir.iterdir()):
            raise RunError(f"--out {sweep_dir}: holds files but no {SWEEP_FILE}; use an empty or new directory")
        return fresh
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: unreadable ({exc}); move it away to start the sweep afresh") from None
    if not isinstance(saved, dict) or saved.get("format") != SWEEP_FORMAT:
        raise RunError(f"{path}: not a wmkit sweep file")
    diff = plan_differences(saved.get("plan", {}), plan.to_dict())
    if diff:
        raise RunError(f"sweep {sweep_dir}: the plan differs from the saved one in {', '.join(diff)}; rerun with "
                       f"the same arguments to resume it, or use another --out")
    return saved


def load_sweep(sweep_dir: Path) -> dict:
    path = Path(sweep_dir) / SWEEP_FILE
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{sweep_dir}: no {SWEEP_FILE} there; pass a directory made by wmkit sweep") from None
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: unreadable ({exc})") from None
    if not isinstance(saved, dict) or saved.get("format") != SWEEP_FORMAT:
        raise RunError(f"{path}: not a wmkit sweep file")
    return saved


def save_sweep(sweep_dir: Path, state: dict) -> None:
    from wmkit.checkpoint import write_json_atomic

    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(sweep_dir) / SWEEP_FILE, state)

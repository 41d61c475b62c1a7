"""Checkpoints: safetensors plus JSON, written atomically, loaded without unpickling anything.

A checkpoint directory ``checkpoints/step-N/`` holds:

- ``model.safetensors``: every weight and buffer of the world model (online encoder, EMA target,
  action encoder, predictor, projectors), metadata ``format_version``, ``wmkit_version``,
  ``domain``, ``vocab_version``;
- ``checkpoint.json``: step, metrics, domain facts, the resolved recipe (so the directory alone
  rebuilds the model), and the sha256 of every file;
- ``trainer_state.safetensors`` + ``trainer_state.json``: optimizer tensors and RNG states, and
  the optimizer's hyper-parameters, step counters and Python/NumPy RNG states (for ``--resume``).

``checkpoints/index.json`` names the ``latest`` and ``best`` checkpoints.
"""

from __future__ import annotations

import copy

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wmkit import __version__, jsonsafe
from wmkit.errors import CheckpointError

FORMAT_VERSION = "1"
MODEL_FILE = "model.safetensors"
META_FILE = "checkpoint.json"
STATE_TENSORS = "trainer_state.safetensors"
STATE_JSON = "trainer_state.json"
INDEX_FILE = "index.json"
#: what to do about a damaged checkpoint
ANOTHER_CHECKPOINT = ("use another checkpoint of the run (wmkit train --resume RUN --checkpoint step-N; "
                      "RUN/checkpoints lists them)")
#: keys checkpoint.json must hold for a checkpoint to be loaded
META_KEYS = ("recipe", "vocab_size", "pad_id", "action_dim", "files")


# ---------------------------------------------------------------------------------------------
# atomic file helpers
# ---------------------------------------------------------------------------------------------


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(jsonsafe.dumps(obj, indent=2, sort_keys=True))
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing {what}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: {what} is truncated or corrupted ({exc}); "
                              f"{ANOTHER_CHECKPOINT}") from None


# ---------------------------------------------------------------------------------------------
# trainer state <-> (tensors, json)
# ---------------------------------------------------------------------------------------------


def _optimizer_to_flat(state_dict: dict) -> tuple[dict, dict]:
    tensors, scalars = {}, {}
    for idx, slots in state_dict["state"].items():
        for key, value in slots.items():
            if hasattr(value, "detach"):
                tensors[f"optim.{idx}.{key}"] = value.detach().contiguous().clone()
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _optimizer_from_flat(tensors: dict, info: dict) -> dict:
    state: dict = {}
    for name, value in tensors.items():
        if not name.startswith("optim."):
            continue
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    for name, value in info.get("scalars", {}).items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": info["param_groups"]}


# ---------------------------------------------------------------------------------------------
# save
# ---------------------------------------------------------------------------------------------


def save_checkpoint(run_dir: Path, *, step: int, model, optimizer, rng: dict, trainer: dict,
                    meta: dict) -> Path:
    """Write ``run_dir/checkpoints/step-{step}/`` atomically and return its path.

    ``rng`` maps names to uint8 tensors (torch RNG states); ``trainer`` is JSON-ready state
    (step counters, best metric, python/numpy RNG); ``meta`` goes into ``checkpoint.json``.
    """
    from safetensors.torch import save_file

    ckpt_root = Path(run_dir) / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step-{step}"
    tmp = Path(tempfile.mkdtemp(prefix=f".step-{step}.", dir=ckpt_root))
    try:
        weights = {k: v.detach().contiguous().clone().cpu() for k, v in model.state_dict().items()}
        file_meta = {"format_version": FORMAT_VERSION, "wmkit_version": __version__,
                     "domain": str(meta.get("domain", "")), "vocab_version": str(meta.get("vocab_version", ""))}
        save_file(weights, str(tmp / MODEL_FILE), metadata=file_meta)
        opt_tensors, opt_info = _optimizer_to_flat(optimizer.state_dict())
        rng_tensors = {f"rng.{k}": v.contiguous().clone() for k, v in rng.items()}
        save_file({**opt_tensors, **rng_tensors}, str(tmp / STATE_TENSORS),
                  metadata={"format_version": FORMAT_VERSION})
        (tmp / STATE_JSON).write_text(jsonsafe.dumps({"optimizer": opt_info, "trainer": trainer}, indent=1))
        files = {name: _sha256(tmp / name) for name in (MODEL_FILE, STATE_TENSORS, STATE_JSON)}
        body = dict(meta, step=step, format_version=FORMAT_VERSION, wmkit_version=__version__, files=files)
        (tmp / META_FILE).write_text(jsonsafe.dumps(body, indent=2, sort_keys=True) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def read_index(run_dir: Path) -> dict:
    path = Path(run_dir) / "checkpoints" / INDEX_FILE
    if not path.exists():
        return {"latest": None, "best": None, "best_metric": None, "steps": []}
    index = read_json(path, "checkpoint index")
    if not isinstance(index, dict) or not isinstance(index.get("steps", []), list):
        raise CheckpointError(f"{path}: checkpoint index is not a JSON object with a steps list; delete it "
                              f"and pass a checkpoint directory, or {ANOTHER_CHECKPOINT}")
    return index


def update_index(run_dir: Path, *, step: int, is_best: bool, best_metric: float | None,
                 criterion: str | None = None, keep: int = 0) -> dict:
    """Record ``step-{step}`` as latest (and best, with the criterion that chose it and its value);
    prune old step checkpoints when ``keep`` > 0."""
    index = read_index(run_dir)
    name = f"step-{step}"
    steps = sorted(set(index.get("steps", [])) | {step})
    index.update(latest=name, steps=steps)
    if criterion is not None:
        index["criterion"] = criterion
    if is_best:
        index.update(best=name, best_metric=best_metric)
    if keep > 0:
        protected = {index.get("best"), index.get("latest")}
        removable = [s for s in steps if f"step-{s}" not in protected]
        for s in removable[:-keep] if len(removable) > keep else []:
            shutil.rmtree(Path(run_dir) / "checkpoints" / f"step-{s}", ignore_errors=True)
            steps.remove(s)
        index["steps"] = steps
    write_json_atomic(Path(run_dir) / "checkpoints" / INDEX_FILE, index)
    return index


# ---------------------------------------------------------------------------------------------
# load
# ---------------------------------------------------------------------------------------------


def resolve_checkpoint(path: str | Path, which: str = "best") -> Path:
    """A checkpoint directory from a run directory (``which`` = best, else latest) or itself."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such run or checkpoint directory")
    if (path / META_FILE).exists() or (path / MODEL_FILE).exists():
        return path
    if (path / "checkpoints").is_dir():
        index = read_index(path)
        order = [which, "latest"] if which != "latest" else ["latest"]
        for key in order:
            name = index.get(key)
            if name and (path / "checkpoints" / name).is_dir():
                return path / "checkpoints" / name
        steps = sorted((p for p in (path / "checkpoints").glob("step-*") if p.is_dir()),
                       key=lambda p: int(p.name.split("-")[1]))
        if steps:
            return steps[-1]
    raise CheckpointError(f"{path}: not a wmkit run or checkpoint directory (no checkpoints/ and no "
                          f"{META_FILE}); pass a run directory from `wmkit train`")


def read_checkpoint_meta(ckpt: Path, *, verify: bool = True) -> dict:
    meta = _checked_meta(ckpt, read_json(Path(ckpt) / META_FILE, "checkpoint metadata"))
    if verify:
        for name, digest in meta.get("files", {}).items():
            file = Path(ckpt) / name
            if not file.exists():
                raise CheckpointError(f"{file}: missing from the checkpoint")
            if _sha256(file) != digest:
                raise CheckpointError(f"{file}: truncated or corrupted (checksum mismatch); "
                                      f"{ANOTHER_CHECKPOINT}")
    return meta


def _checked_meta(ckpt: Path, meta: Any) -> dict:
    path = Path(ckpt) / META_FILE
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(meta).__name__}; {ANOTHER_CHECKPOINT}")
    missing = [k for k in META_KEYS if k not in meta]
    if missing or not isinstance(meta.get("recipe"), dict) or not isinstance(meta.get("files"), dict):
        raise CheckpointError(f"{path}: lacks {', '.join(missing) or 'a valid recipe/files entry'}; "
                              f"{ANOTHER_CHECKPOINT}")
    return meta


def fit_weights(model, weights: dict, ckpt: Path) -> None:
    """Load ``weights`` into ``model`` strictly; a mismatch names the missing, unexpected and
    wrongly shaped tensors (a few of each)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    shapes = sorted(k for k in set(expected) & set(weights) if tuple(expected[k].shape) != tuple(weights[k].shape))

    def few(names):
        return ", ".join(names[:4]) + (f" (+{len(names) - 4} more)" if len(names) > 4 else "")

    problems = ([f"missing {few(missing)}"] if missing else []) + \
               ([f"unexpected {few(unexpected)}"] if unexpected else []) + \
               ([f"wrong shape {few([f'{k} {tuple(weights[k].shape)} != {tuple(expected[k].shape)}' for k in shapes])}"]
                if shapes else [])
    if problems:
        raise CheckpointError(f"{Path(ckpt) / MODEL_FILE}: weights do not fit the recorded recipe: "
                              f"{'; '.join(problems)}")
    model.load_state_dict(weights, strict=True)


def non_finite_tensors(weights: dict) -> list[str]:
    """Names of floating tensors holding NaN or inf."""
    import torch

    return sorted(k for k, t in weights.items() if t.is_floating_point() and not bool(torch.isfinite(t).all()))


def _load_tensors(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    try:
        tensors = {}
        with safe_open(str(path), framework="pt") as fh:
            file_meta = fh.metadata() or {}
            for key in fh.keys():
                tensors[key] = fh.get_tensor(key)
        return tensors, file_meta
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except Exception as exc:  # safetensors raises its own error types for truncated headers
        raise CheckpointError(f"{path}: truncated or corrupted ({type(exc).__name__}: {exc})") from None


def load_weights(ckpt: Path) -> dict:
    """The model tensors of a checkpoint directory, after checking every file's sha256."""
    read_checkpoint_meta(ckpt)
    tensors, _ = _load_tensors(Path(ckpt) / MODEL_FILE)
    return tensors


@dataclass
class LoadedCheckpoint:
    """A model rebuilt from a checkpoint directory, with everything recorded beside it."""

    model: Any
    recipe: dict
    info: dict
    run_dir: Path | None
    path: Path


def load_checkpoint(path: str | Path, *, host=None, which: str = "best", device: str = "cpu") -> LoadedCheckpoint:
    """Rebuild the world model from a run or checkpoint directory, in eval mode."""
    from wmkit.model import build_world_model
    from wmkit.recipe import migrate_deprecated

    if host is None:
        from wmkit.plugins import get_host

        host = get_host()
    ckpt = resolve_checkpoint(path, which)
    from wmkit.export import is_export, load_export

    if is_export(ckpt):  # an inference folder written by `wmkit export`
        return load_export(ckpt, host=host, device=device)
    meta = read_checkpoint_meta(ckpt)
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{ckpt}: checkpoint format {meta.get('format_version')!r} is not supported "
                              f"by wmkit {__version__} (format {FORMAT_VERSION})")
    weights, _ = _load_tensors(ckpt / MODEL_FILE)
    bad = non_finite_tensors(weights)
    if bad:
        raise CheckpointError(f"{ckpt / MODEL_FILE}: {len(bad)} of {len(weights)} tensors hold NaN or inf (e.g. "
                              f"{bad[0]}): the run diverged before this checkpoint; {ANOTHER_CHECKPOINT}")
    recipe = copy.deepcopy(meta["recipe"])
    migrate_deprecated(recipe)  # recipes of older checkpoints use renamed keys
    from wmkit.errors import WmkitError
    from wmkit.recipe import recipe_from_dict

    try:
        recipe_from_dict(recipe, host)  # a hand-edited recipe gives one line, not a traceback
    except WmkitError as exc:
        raise CheckpointError(f"{ckpt / META_FILE}: its recorded recipe is invalid ({exc})") from None
    model = build_world_model(recipe, vocab_size=meta["vocab_size"], pad_id=meta["pad_id"],
                              action_dim=meta["action_dim"], resolve=host.constructor)
    fit_weights(model, weights, ckpt)
    model.to(device).eval()
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else None
    return LoadedCheckpoint(model=model, recipe=recipe, info=meta, run_dir=run_dir, path=ckpt)


def load_trainer_state(ckpt: Path) -> tuple[dict, dict, dict]:
    """``(optimizer_state_dict, rng_tensors, trainer_json)`` of a checkpoint, for ``--resume``."""
    tensors, _ = _load_tensors(Path(ckpt) / STATE_TENSORS)
    body = read_json(Path(ckpt) / STATE_JSON, "trainer state")
    needed = ("step", "best_metric", "best_loss", "python_random", "numpy_random")
    if (not isinstance(body, dict) or not isinstance(body.get("optimizer"), dict)
            or "param_groups" not in body["optimizer"] or not isinstance(body.get("trainer"), dict)
            or any(k not in body["trainer"] for k in needed)):
        raise CheckpointError(f"{Path(ckpt) / STATE_JSON}: trainer state lacks the optimizer or trainer fields; "
                              f"{ANOTHER_CHECKPOINT}")
    try:
        optimizer = _optimizer_from_flat(tensors, body["optimizer"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{Path(ckpt) / STATE_JSON}: optimizer state is malformed ({type(exc).__name__}); "
                              f"{ANOTHER_CHECKPOINT}") from None
    rng = {k[len("rng."):]: v for k, v in tensors.items() if k.startswith("rng.")}
    return optimizer, rng, body["trainer"]


def check_vocab(info: dict, domain) -> None:
    """Refuse data tokenized with another vocabulary than the checkpoint's
    (defect D2, docs/reference.md#d2)."""
    if info.get("domain") != domain.name:
        raise CheckpointError(f"checkpoint is of domain {info.get('domain')!r} but the data is of domain "
                              f"{domain.name!r}; pass data of the checkpoint's domain")
    if info.get("vocab_version") != domain.vocab.version:
        raise CheckpointError(f"checkpoint vocabulary {info.get('vocab_version')!r} is incompatible with "
                              f"this wmkit's {domain.name} vocabulary {domain.vocab.version!r}; retrain or "
                              f"use the wmkit version that wrote it")

"""``wmkit export``: a trained checkpoint as an inference folder in the Hugging Face layout.

``OUT/`` holds:

- ``model.safetensors``: only what inference reads (online encoder, EMA target, action encoder,
  predictor, and the residual gain of models that predict from target(before)); no optimizer state,
  no training projectors or loss parameters;
- ``config.json`` (:data:`EXPORT_FORMAT`): the resolved recipe, the domain facts a checkpoint records
  (domain, vocabulary version and size, pad id, action size and names), the components, the data
  source and its split counts, the step, the parameter counts, the sha256 of the weights, and the
  audit the card was written from;
- ``README.md``: the model card (:func:`model_card`), written from that audit.

:func:`load_export` rebuilds the model from such a folder without unpickling anything;
:func:`wmkit.checkpoint.load_checkpoint` calls it, so ``wmkit audit OUT``, ``wmkit bench retrieval
OUT`` and :func:`wmkit.load` read an export as they read a run.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from wmkit import __version__
from wmkit.errors import CheckpointError, WmkitError

EXPORT_FORMAT = "wmkit-export/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
#: the state-dict prefixes inference needs (everything else in a checkpoint is training-only)
INFERENCE_PREFIXES = ("encoder.", "target.", "action_encoder.", "predictor.")
INFERENCE_TENSORS = ("residual_gain",)
#: audit warnings that are about memorisation (the card lists them in their own section)
MEMORISATION_KINDS = ("memorisation", "near_duplicates", "similar_content", "knn_falling", "train_gap")


class ExportError(WmkitError):
    """An export cannot be written where asked, or the checkpoint lacks what the card needs."""


def is_inference_tensor(name: str) -> bool:
    return name.startswith(INFERENCE_PREFIXES) or name in INFERENCE_TENSORS


def is_export(path: str | Path) -> bool:
    """True when ``path`` is a folder written by :func:`export` (its config names :data:`EXPORT_FORMAT`)."""
    config = Path(path) / CONFIG_FILE
    if not config.is_file() or not (Path(path) / WEIGHTS_FILE).exists():
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("format") == EXPORT_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


# ---------------------------------------------------------------------------------------------
# the audit the card is written from
# ---------------------------------------------------------------------------------------------


def audit_of(lc) -> dict | None:
    """The run's saved audit when it is of this very checkpoint, else ``None``."""
    from wmkit.audit.core import audit_path, load_result

    if lc.run_dir is None:
        return None
    result = load_result(audit_path(lc.run_dir))
    if result is None:
        return None
    same = result.get("checkpoint_name") == lc.path.name and result.get("step") == lc.info.get("step")
    return result if same else None


def _no_audit_message(source: Path, lc) -> str:
    from wmkit.audit.core import audit_path, load_result

    saved = load_result(audit_path(lc.run_dir)) if lc.run_dir is not None else None
    why = (f"its run's audit.json is of {saved.get('checkpoint_name')}, not {lc.path.name}" if saved
           else f"no audit of {lc.path.name} was saved in its run directory")
    return (f"{source}: {why}; run `wmkit audit {lc.path}` first, or pass --no-audit to export it "
            f"unaudited (the model card then says so)")


# ---------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------


def check_export_target(out: Path, *, force: bool) -> None:
    """Refuse an ``OUT`` that holds something, unless ``force`` and it is a wmkit export."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: is a file, not a folder; choose another OUT")
    if not out.exists() or not any(out.iterdir()):
        return
    if not is_export(out):
        raise ExportError(f"{out}: is not empty and is not a wmkit export; --force replaces only wmkit exports: "
                          f"choose another OUT")
    if not force:
        raise ExportError(f"{out}: already holds an export; pass --force to replace it or choose another OUT")


def _run_config(run_dir: Path | None) -> dict:
    if run_dir is None or not (run_dir / "config.json").is_file():
        return {}
    try:
        body = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def export_config(lc, *, audit: dict | None, host=None) -> dict:
    """The ``config.json`` of an export of loaded checkpoint ``lc``."""
    from wmkit.runtime import make_domain, resolve_source

    run = _run_config(lc.run_dir)
    info = lc.info
    data = dict(run.get("data") or {})
    if not data.get("source"):
        data["source"] = resolve_source(lc.recipe, make_domain(lc.recipe, host))
    return {
        "format": EXPORT_FORMAT, "model_type": "wmkit-jepa", "library_name": "wmkit",
        "wmkit_version": __version__, "trained_with": run.get("wmkit_version") or info.get("wmkit_version"),
        "git_revision": run.get("git_revision"),
        "recipe": lc.recipe, "recipe_digest": info.get("recipe_digest") or run.get("recipe_digest"),
        "recipe_origin": run.get("origin"), "recipe_overrides": run.get("overrides") or [],
        **{k: info.get(k) for k in ("domain", "vocab_version", "vocab_size", "pad_id", "action_dim", "step")},
        "action_names": run.get("action_names"), "label_names": run.get("label_names"),
        "components": run.get("components"), "data": data,
        "checkpoint": lc.path.name, "probe_metrics": info.get("metrics") or {},
        "parameters": dict(lc.model.parameter_breakdown()),
        "audit": None if audit is None else {k: audit.get(k) for k in (
            "created", "verdict", "verdicts", "gallery_size", "split", "data_source", "checkpoint_name")},
    }


def export(source: str | Path, out: str | Path, *, force: bool = False, no_audit: bool = False,
           push: str | None = None, host=None, which: str = "best") -> Path:
    """Export ``source`` (a run directory: its best checkpoint, else latest; or a checkpoint
    directory) to the inference folder ``out``; returns ``out``.

    Refused (nothing written): a checkpoint with no saved audit of itself unless ``no_audit``; an
    ``out`` that holds anything but an export, or an export without ``force``. The folder is written
    beside ``out`` and swapped in whole (:class:`wmkit.rundir.Staged`). ``push`` uploads it to that
    Hugging Face Hub repository afterwards (:func:`push_to_hub`).
    """
    from safetensors.torch import save_file

    from wmkit.checkpoint import _sha256, load_checkpoint, resolve_checkpoint, write_json_atomic
    from wmkit.rundir import Staged

    source, out = Path(source), Path(out)
    check_export_target(out, force=force)
    ckpt = resolve_checkpoint(source, which)
    if is_export(ckpt):
        raise ExportError(f"{source}: is already an export; copy the folder instead")
    lc = load_checkpoint(ckpt, host=host)
    audit = audit_of(lc)
    if audit is None and not no_audit:
        raise ExportError(_no_audit_message(source, lc))
    config = export_config(lc, audit=audit, host=host)
    weights = {k: v.detach().contiguous().clone().cpu() for k, v in lc.model.state_dict().items()
               if is_inference_tensor(k)}
    config["tensors"] = len(weights)
    config["exported_parameters"] = int(sum(v.numel() for v in weights.values()))

    staged = Staged(out)
    try:
        out.absolute().parent.mkdir(parents=True, exist_ok=True)
        staged.path.mkdir()
        save_file(weights, str(staged.path / WEIGHTS_FILE),
                  metadata={"format": "pt", "wmkit_format": EXPORT_FORMAT, "wmkit_version": __version__,
                            "domain": str(config["domain"]), "vocab_version": str(config["vocab_version"])})
        config["files"] = {WEIGHTS_FILE: _sha256(staged.path / WEIGHTS_FILE)}
        write_json_atomic(staged.path / CONFIG_FILE, config)
        (staged.path / CARD_FILE).write_text(model_card(config, audit), encoding="utf-8")
        if audit is not None:
            write_json_atomic(staged.path / "audit.json", audit)
        staged.commit()
    except OSError as exc:
        staged.discard()
        raise ExportError(f"{out}: cannot write the export ({exc.strerror or type(exc).__name__}); "
                          f"choose a writable OUT with free space") from None
    except BaseException:
        staged.discard()
        raise
    if push:
        push_to_hub(out, push)
    return out


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def push_to_hub(folder: str | Path, repo_id: str) -> str:
    """Upload an export folder to the Hugging Face Hub model repository ``repo_id``; returns its URL."""
    folder = Path(folder)
    later = f"the export is in {folder}; push it later with `wmkit export` --push or `huggingface-cli upload`"
    if _offline():
        raise ExportError(f"--push {repo_id}: the Hugging Face Hub is offline here (HF_HUB_OFFLINE=1); {later}")
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise ExportError(f"--push {repo_id}: needs the huggingface_hub package (pip install huggingface_hub); "
                          f"{later}") from None
    try:
        api = HfApi()
        api.create_repo(repo_id, repo_type="model", exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                                 commit_message=f"wmkit {__version__} export")
    except Exception as exc:  # network, authentication, a bad repo id: one line, the export stays
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ExportError(f"--push {repo_id}: upload failed ({type(exc).__name__}: {reason}); {later}") from None
    return str(getattr(info, "commit_url", None) or f"https://huggingface.co/{repo_id}")


# ---------------------------------------------------------------------------------------------
# load
# ---------------------------------------------------------------------------------------------


def read_export_config(path: str | Path, *, verify: bool = True) -> dict:
    from wmkit.checkpoint import _sha256, read_json

    path = Path(path)
    config = read_json(path / CONFIG_FILE, "export config")
    needed = ("recipe", "domain", "vocab_version", "vocab_size", "pad_id", "action_dim", "files")
    if not isinstance(config, dict) or config.get("format") != EXPORT_FORMAT or any(k not in config for k in needed):
        raise CheckpointError(f"{path / CONFIG_FILE}: not a {EXPORT_FORMAT} config (lacks "
                              f"{', '.join(k for k in needed if not isinstance(config, dict) or k not in config)}); "
                              f"export the run again with `wmkit export`")
    if verify:
        digest = (config.get("files") or {}).get(WEIGHTS_FILE)
        if digest is None or _sha256(path / WEIGHTS_FILE) != digest:
            raise CheckpointError(f"{path / WEIGHTS_FILE}: truncated or corrupted (checksum mismatch); "
                                  f"export the run again with `wmkit export --force`")
    return config


def load_export(path: str | Path, *, host=None, device: str = "cpu"):
    """Rebuild the world model of an export folder (eval mode) as a
    :class:`wmkit.checkpoint.LoadedCheckpoint` whose ``info`` is the export's config."""
    from wmkit.checkpoint import LoadedCheckpoint, _load_tensors, non_finite_tensors
    from wmkit.model import build_world_model
    from wmkit.recipe import migrate_deprecated, recipe_from_dict

    if host is None:
        from wmkit.plugins import get_host

        host = get_host()
    path = Path(path)
    config = read_export_config(path)
    weights, _ = _load_tensors(path / WEIGHTS_FILE)
    bad = non_finite_tensors(weights)
    if bad:
        raise CheckpointError(f"{path / WEIGHTS_FILE}: {len(bad)} tensors hold NaN or inf (e.g. {bad[0]})")
    recipe = copy.deepcopy(config["recipe"])
    migrate_deprecated(recipe)
    recorded = (config.get("data") or {}).get("source")
    if recorded:  # the source training read (a --data flag is not part of the recipe)
        recipe["data"]["source"] = recorded
    try:
        recipe_from_dict(recipe, host)
    except WmkitError as exc:
        raise CheckpointError(f"{path / CONFIG_FILE}: its recorded recipe is invalid ({exc})") from None
    model = build_world_model(recipe, vocab_size=config["vocab_size"], pad_id=config["pad_id"],
                              action_dim=config["action_dim"], resolve=host.constructor)
    expected = {k: v for k, v in model.state_dict().items() if is_inference_tensor(k)}
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    shapes = sorted(k for k in set(expected) & set(weights) if tuple(expected[k].shape) != tuple(weights[k].shape))
    if missing or unexpected or shapes:
        what = "; ".join(f"{label} {', '.join(names[:3])}" for label, names in
                         (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)) if names)
        raise CheckpointError(f"{path / WEIGHTS_FILE}: weights do not fit the recorded recipe: {what}")
    model.load_state_dict(weights, strict=False)  # the rest (projectors, loss parameters) is training-only
    model.to(device).eval()
    return LoadedCheckpoint(model=model, recipe=recipe, info=config, run_dir=None, path=path)


# ---------------------------------------------------------------------------------------------
# the model card
# ---------------------------------------------------------------------------------------------


def _pct(x) -> str:
    return "-" if not isinstance(x, (int, float)) or isinstance(x, bool) else f"{100 * x:.2f}%"


def _num(x, digits: int = 4) -> str:
    if isinstance(x, bool) or x is None:
        return "-" if x is None else ("yes" if x else "no")
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def knn_rows(audit: dict) -> list[tuple[str, ...]]:
    """One row per k: KNN@k of the model beside copy, its ratio to copy, linear edit, online copy,
    random and the model with shuffled actions (the audit's terminal table, as text)."""
    copy_k = audit.get("copy_knn_at_k") or {}
    online = audit.get("online_copy_knn_at_k") or {}
    linear = audit.get("linear_edit_knn_at_k") or {}
    shuffled = audit.get("action_sensitivity") or {}
    rows = []
    for k in (1, 5, 10, 50):
        model, c = audit.get(f"knn_at_{k}"), copy_k.get(str(k))
        ratio = f"{model / c:.2f}x" if isinstance(model, (int, float)) and c else "-"
        rows.append((f"KNN@{k}", _pct(model), _pct(c), ratio, _pct(linear.get(str(k))), _pct(online.get(str(k))),
                     _pct(audit.get(f"random_knn_at_{k}")), _pct(shuffled.get(f"knn_at_{k}"))))
    return rows


def model_card(config: dict, audit: dict | None) -> str:
    """The ``README.md`` of an export: what it is, what it was trained on, and how good the audit says
    it is beside its baselines (or that it was never audited)."""
    from wmkit.recipe import dump_toml

    recipe = config["recipe"]
    meta, data_cfg = recipe.get("meta") or {}, recipe.get("data") or {}
    data = config.get("data") or {}
    counts = data.get("counts") or {}
    params = config.get("parameters") or {}
    name = meta.get("name", "wmkit model")
    verdict = audit.get("verdict") if audit else "unaudited"
    lines = ["---", "library_name: wmkit", "tags:", "- wmkit", "- jepa", "- world-model", f"- {config['domain']}",
             "---", "", f"# {name} ({config['domain']} domain)", "",
             f"A JEPA world model of {config['domain']} transitions trained with wmkit {config.get('trained_with') or '?'} "
             f"and exported with wmkit {config['wmkit_version']}. Load it with `wmkit.load(\"PATH\")`; audit it again "
             f"with `wmkit audit PATH`.", "",
             f"**Audit verdict: {verdict}**", ""]
    if audit is None:
        lines += ["> **This model was exported without an audit (`--no-audit`).** Nothing below says how well it "
                  "retrieves edits or whether it beats copying its input; run `wmkit audit PATH` before using it.", ""]
    lines += ["## Model", "",
              f"- recipe: `{name}`" + (f" ({meta.get('description')})" if meta.get("description") else ""),
              f"- recipe digest: `{config.get('recipe_digest')}`; overrides: "
              + (", ".join(f"`{o}`" for o in config.get("recipe_overrides") or []) or "none"),
              f"- encoder: `{recipe['model']['encoder'].get('name')}`, {recipe['model']['encoder'].get('loops')} loops, "
              f"dim {recipe['model'].get('dim')}, heads {recipe['model'].get('heads')}, {data_cfg.get('max_len')} tokens",
              f"- vocabulary: `{config['vocab_version']}` ({config['vocab_size']} ids, pad {config['pad_id']}); "
              f"action: {config['action_dim']}-D",
              f"- parameters: {_num(config.get('exported_parameters'))} in this export "
              f"({_num(config.get('tensors'))} tensors: online encoder, EMA target, action encoder, predictor); "
              f"the training model had {_num(params.get('total'))}", ""]
    if params:
        lines += ["| part | parameters |", "|---|---:|"]
        lines += [f"| {_cell(part)} | {_num(count)} |" for part, count in params.items()]
        lines += ["", "(`inference export` in this table is the training model's count of a deployment without the "
                  "EMA target; this folder keeps the target too, so that edit embeddings and audits can be computed.)",
                  ""]
    components = config.get("components") or {}
    if components:
        # a many-valued kind (loggers) records a list of components
        chosen = [(kind, c) for kind, value in components.items()
                  for c in (value if isinstance(value, list) else [value])]
        lines.append("Components: " + ", ".join(f"{kind} `{c.get('name')}` ({c.get('plugin')} {c.get('version') or ''})".rstrip()
                                               for kind, c in chosen) + ".")
        lines.append("")
    holdout = data_cfg.get("holdout_repos") or []
    lines += ["## Training", "",
              f"- data source: `{data.get('source')}`" + (f" (fingerprint `{data.get('source_fingerprint')}`)"
                                                          if data.get("source_fingerprint") else ""),
              ("- split: " + (f"{data_cfg.get('val_percent')}% of commits held out for validation by commit hash"
                              if counts.get("split_rule", "hash") == "hash" else
                              f"the source's own split column ({counts.get('split_rule')})"))
              + f"; kept {_num(counts.get('kept'))} of {_num(counts.get('rows_read'))} rows: "
                f"{_num(counts.get('train'))} train, {_num(counts.get('val'))} validation"
              + (f", {_num(counts.get('holdout'))} of held-out repositories" if holdout else ""),
              "- held-out repositories: " + (", ".join(f"`{r}`" for r in holdout) if holdout else "none"),
              f"- training steps: checkpoint `{config.get('checkpoint')}` at step {_num(config.get('step'))} of "
              f"{_num(recipe.get('train', {}).get('steps'))} (selected by `{recipe.get('train', {}).get('select')}`); "
              f"batch {recipe.get('optim', {}).get('batch_size')}, lr {recipe.get('optim', {}).get('lr')}, "
              f"seed {meta.get('seed')}", ""]
    if audit is not None:
        lines += _audit_section(audit)
    lines += ["## Recipe", "", "The resolved recipe (`wmkit train` reads it back as a TOML file):", "", "```toml",
              dump_toml(recipe).rstrip(), "```", "",
              "## Files", "",
              f"- `{WEIGHTS_FILE}`: inference weights only (no optimizer state); loaded without unpickling",
              f"- `{CONFIG_FILE}`: recipe, domain and vocabulary, components, data source, sha256 of the weights",
              ("- `audit.json`: the full audit this card is written from" if audit is not None else
               "- no `audit.json`: the model was never audited"), ""]
    return "\n".join(lines)


def _severity(warning: dict) -> str:
    return "**warning**" if warning.get("severity", "warning") == "warning" else "note:"


def _audit_section(audit: dict) -> list[str]:
    n = audit.get("gallery_size")
    split = "held-out repositories" if audit.get("split") == "holdout" else "validation pairs (never trained on)"
    lines = ["## Audit", "",
             f"`wmkit audit` of `{audit.get('checkpoint_name')}` on {_num(n)} {split} of `{audit.get('data_source')}` "
             f"({audit.get('created')}, wmkit {audit.get('wmkit_version')}).", "",
             f"Verdict: **{audit.get('verdict')}**" + (f" (also: {', '.join(v for v in audit.get('verdicts') or [] if v != audit.get('verdict'))})"
                                                       if len(audit.get("verdicts") or []) > 1 else "")]
    lines += [f"- {reason}" for reason in audit.get("reasons") or []]
    lines += ["", f"Retrieval of target(after) among all {_num(n)} targets (gallery N={_num(n)}), beside the baselines:", "",
              "| k | model | copy | model / copy | linear edit | online copy | random | shuffled action |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join(row) + " |" for row in knn_rows(audit)]
    lines += ["", "copy: target(before) as the prediction (\"nothing changes\"); online copy: online(before) as it; "
              "linear edit: ridge regression from the tokens the edit removed and added, fit on training pairs; "
              "random: k/N; shuffled action: the model given another pair's action.", ""]
    beats = audit.get("beats_copy") or {}
    linear = audit.get("linear_edit") or {}
    if beats:
        lines.append(f"- prediction closer to target(after) than copy on {_pct(beats.get('rate'))} of pairs "
                     f"(95% interval {_pct(beats.get('low'))} to {_pct(beats.get('high'))})")
    if linear:
        lines.append(f"- the linear edit model beats copy on {_pct((linear.get('beats_copy') or {}).get('rate'))}; "
                     f"the model is closer than it on {_pct(linear.get('model_closer_rate'))} of pairs")
    lines.append(f"- cos {_num(audit.get('cos'))}, delta cos {_num(audit.get('delta_cos'))}, lift over copy "
                 f"{_num(audit.get('lift'))}; effective rank online/target/pred {_num(audit.get('erank_online'), 1)}/"
                 f"{_num(audit.get('erank_target'), 1)}/{_num(audit.get('erank_pred'), 1)}")
    action = audit.get("action_sensitivity") or {}
    if action.get("statement"):
        lines.append(f"- action: {action['statement']}")
    lines += ["", "### Memorisation", ""]
    gap = audit.get("train_gap")
    if gap:
        lines.append(f"- train vs validation KNN@5 over equal galleries of N={_num(gap.get('sample_size'))}: "
                     f"{_pct(gap['train'].get('knn_at_5'))} vs {_pct(gap['val'].get('knn_at_5'))} "
                     f"(memorising: {_num(bool(gap.get('memorising')))})")
    nd = audit.get("near_duplicates")
    if nd:
        lines.append(f"- {_num(nd.get('near_duplicates'))} of {_num(nd.get('val_checked'))} validation pairs nearly "
                     f"duplicate a training pair ({_num(nd.get('exact_duplicates'))} token-identical)")
    warnings = audit.get("warnings") or []
    memo = [w for w in warnings if w.get("kind") in MEMORISATION_KINDS]
    lines += [f"- {_severity(w)} [{w.get('kind')}] {w.get('message')}" for w in memo]
    if not memo:
        lines.append("- no memorisation warning")
    others = [w for w in warnings if w.get("kind") not in MEMORISATION_KINDS]
    lines += ["", "### Other warnings", ""]
    lines += [f"- {_severity(w)} [{w.get('kind')}] {w.get('message')}" for w in others] or ["- none"]
    lines.append("")
    return lines



# ``wmkit.export(run, out)`` is the Python API's export (wmkit.api)
from wmkit import _callable_module  # noqa: E402

_callable_module(__name__, "export")

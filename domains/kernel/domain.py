"""The ``kernel`` domain: GPU-kernel source transitions (CUDA C++ and Triton).

State = one kernel source file, tokenized by :mod:`wmkit_kernel.tokenizer` (Pygments lexer, fixed
vocabulary ``kernel-lex-1`` with disjoint ranges). Action = the 12-D vector of
:mod:`wmkit_kernel.actions`. Default source = ``embedded:kernels``, the deterministic generator of
:mod:`wmkit_kernel.generator`. Reference: spec §8 (docs/reference.md#s8) (KernelWM) for the task,
§1/§2 (docs/reference.md#s1, #s2) for the CodeWM data and action conventions, §11 (docs/reference.md#s11) for
the defects avoided (stable hashing, disjoint vocabulary).

Labels for probes: ``edit_class`` (argmax of the action's change indicators, see
:func:`wmkit_kernel.actions.edit_class`), ``transform`` and ``family`` (generated rows only; -1
elsewhere) and ``lang`` (CUDA / Triton).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from wmkit.domain import Domain, SkipRow, Transition, Vocabulary
from wmkit.errors import DataError

from .actions import ACTION_NAMES, EDIT_CLASSES, action_vector, edit_class, kernel_facts
from .generator import FAMILIES, GENERATOR_VERSION, TRANSFORMS, generate
from .plugin import DEFAULT_RECIPE, DEFAULT_SOURCE, KernelOptions
from .tokenizer import VOCAB, detect_language, ids_of, lex, tokenize

#: bump when the action's definition changes (part of the domain fingerprint)
ACTION_VERSION = "kernel-act-1"
LANG_LABELS = ("CUDA", "Triton")

CUDA_SOURCE_EXTS = (".cu", ".cuh")
CUDA_HEADER_EXTS = (".h", ".hpp", ".hxx", ".inl")
CUDA_HOST_EXTS = (".cpp", ".cc", ".cxx")
_DEVICE_MARKERS = re.compile(r"__global__|__device__|__shared__|<<<|\bcute::|\bcutlass::|CUTLASS_DEVICE|"
                             r"CUTE_DEVICE|CUTLASS_HOST_DEVICE|__launch_bounds__")
_HOST_MARKERS = re.compile(r"\bat::cuda\b|cudaStream_t|cuda_runtime|cudaLaunchKernel|c10::cuda")


class KernelDomain(Domain):
    """GPU-kernel edits (CUDA C++ / Triton) with a lexer vocabulary and a 12-D kernel action."""

    name = "kernel"
    description = "GPU-kernel edits (CUDA C++ / Triton): Pygments-lexed tokens, 12-D kernel action"
    default_source = DEFAULT_SOURCE
    default_recipe = DEFAULT_RECIPE
    label_names = {
        "edit_class": list(EDIT_CLASSES),
        "transform": list(TRANSFORMS),
        "family": list(FAMILIES),
        "lang": list(LANG_LABELS),
    }
    #: the edit shows as changed tokens, so action encoders may read them
    action_inputs = ("vector", "edit_tokens")

    def __init__(self, options: Mapping[str, Any] | None = None):
        super().__init__()
        own = {key: value for key, value in dict(options or {}).items() if key in KernelOptions.fields}
        self.settings = KernelOptions.of(own, "data.")  # only its own keys: the fingerprint lists them all
        self.language: str = self.settings.language
        self.embedded_pairs: int = self.settings.embedded_pairs

    # -- what the model needs ------------------------------------------------------------------
    @property
    def vocab(self) -> Vocabulary:
        return VOCAB

    @property
    def action_names(self) -> list[str]:
        return list(ACTION_NAMES)

    def fingerprint(self) -> str:
        """Vocabulary and action versions plus the option that changes transitions (``language``);
        ``embedded_pairs`` only changes the embedded source and is in its own fingerprint."""
        return f"{self.name}:{VOCAB.version}:{ACTION_VERSION}:language={self.language!r}"

    # -- languages -----------------------------------------------------------------------------
    def language_of(self, row: Mapping[str, Any]) -> str:
        """``"cuda"`` or ``"triton"`` for a row (declared ``lang``, file name, then content)."""
        path = str(row.get("new_file") or row.get("old_file") or "")
        text = row.get("new_contents") or row.get("old_contents") or ""
        return detect_language(path, text if isinstance(text, str) else "", row.get("lang"))

    def _wanted(self, lang: str) -> bool:
        return self.language == "auto" or lang == self.language

    # -- transitions ---------------------------------------------------------------------------
    def transition(self, row: Mapping[str, Any]) -> Transition:
        old = _side(row, "old_contents")
        new = _side(row, "new_contents")
        if not old.strip() and not new.strip():
            raise SkipRow("blank")
        if old == new:
            raise SkipRow("unchanged")
        lang = self.language_of(row)
        if not self._wanted(lang):
            raise SkipRow(f"language_{lang}_filtered")
        try:
            lex_old, lex_new = lex(old, lang), lex(new, lang)
        except RecursionError as exc:  # pathological nesting in a preprocessor body
            raise SkipRow("tokenize_error") from exc
        action = action_vector(kernel_facts(lex_old, lang), kernel_facts(lex_new, lang), old, new)
        labels = {
            "edit_class": edit_class(action),
            "transform": _index(self.label_names["transform"], row.get("transform")),
            "family": _index(self.label_names["family"], row.get("family")),
            "lang": LANG_LABELS.index("Triton" if lang == "triton" else "CUDA"),
        }
        return Transition(before=ids_of(lex_old, lang), after=ids_of(lex_new, lang), action=action,
                          labels=labels)

    def tokenize(self, text: str, lang: str | None = None) -> list[int]:
        """Token ids of one source: ``lang`` if given, else ``data.language``, else detected."""
        if lang is None:
            lang = self.language if self.language != "auto" else detect_language("", text)
        return tokenize(text, lang)

    # -- file filters for git: histories ---------------------------------------------------------
    def accepts_file(self, path: str) -> bool:
        """Kernel candidates by extension: CUDA sources/headers/host files, Python (Triton)."""
        low = path.lower()
        if low.endswith(".py"):
            return self._wanted("triton")
        if low.endswith(CUDA_SOURCE_EXTS + CUDA_HEADER_EXTS + CUDA_HOST_EXTS):
            return self._wanted("cuda")
        return False

    def accepts_text(self, path: str, old: str, new: str) -> bool:
        """Content check: ``.cu``/``.cuh`` always; headers need CUDA device markers; C++ host files
        device or host-CUDA markers; Python files ``@triton.jit`` (in either version)."""
        if not self.accepts_file(path):
            return False
        low = path.lower()
        both = (old or "", new or "")
        if low.endswith(CUDA_SOURCE_EXTS):
            return True
        if low.endswith(".py"):
            return any("@triton.jit" in text for text in both)
        if low.endswith(CUDA_HEADER_EXTS):
            return any(_DEVICE_MARKERS.search(text) for text in both)
        return any(_DEVICE_MARKERS.search(text) or _HOST_MARKERS.search(text) for text in both)

    # -- the embedded source -------------------------------------------------------------------
    def _languages(self) -> tuple[str, ...]:
        return ("cuda", "triton") if self.language == "auto" else (self.language,)

    def rows(self, source: str) -> Iterable[Mapping[str, Any]] | None:
        """``embedded:kernels`` -> the generator's rows (``data.embedded_pairs`` of them)."""
        if source.strip() != DEFAULT_SOURCE:
            return None
        return generate(self.embedded_pairs, self._languages())

    def source_fingerprint(self, source: str) -> str | None:
        if source.strip() != DEFAULT_SOURCE:
            return None
        return f"{GENERATOR_VERSION}:pairs={self.embedded_pairs}:languages={','.join(self._languages())}"


def _side(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        where = row.get("commit") or "?"
        raise DataError(f"kernel domain: row {where}: {key} is {type(value).__name__}, expected a string; "
                        f"rows must follow the CommitPackFT schema (old_contents/new_contents as text)")
    return value


def _index(names: list[str], value: Any) -> int:
    return names.index(value) if isinstance(value, str) and value in names else -1


__all__ = ["KernelDomain", "ACTION_VERSION"]

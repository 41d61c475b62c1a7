"""The ``code`` domain: Python files before and after a commit (reference §1-§2, docs/reference.md#s1, #s2).

State = the AST token sequence of a whole file (:mod:`wmkit_code.tokenizer`); action = the 7-D or
15-D edit vector (:mod:`wmkit_code.actions`); labels = ``edit_type``, ``scope`` and ``joint``.
Each side of a row is parsed exactly once; the parse feeds both the tokens and the action.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from wmkit.domain import Domain, SkipRow, Transition, Vocabulary
from wmkit.errors import DataError

from wmkit_code import actions as act
from wmkit_code import generator as gen
from wmkit_code import text_tokens
from wmkit_code import tokenizer as tok
from wmkit_code.plugin import DEFAULT_SOURCE, CodeOptions

#: label name -> class names (order = label value)
LABEL_NAMES = {
    "edit_type": list(act.EDIT_TYPES),
    "scope": list(act.SCOPES),
    "joint": [f"{t}/{s}" for t in act.EDIT_TYPES for s in act.SCOPES],
}


class CodeDomain(Domain):
    """Python commits: AST tokens of the file before/after, 7-D or 15-D edit action."""

    name = "code"
    description = "Python files before/after a commit: AST tokens, 7-D/15-D edit action (CodeWM 2)"
    default_source = DEFAULT_SOURCE
    default_recipe = "quickstart"
    label_names = LABEL_NAMES
    #: the edit shows as changed tokens, so action encoders may read them
    action_inputs = ("vector", "edit_tokens")

    def __init__(self, options: Mapping[str, Any] | None = None):
        super().__init__()
        self.settings = CodeOptions.of(options, "data.")
        self._text = self.settings.tokens == "ast_text"
        self._dims = 7 if self.settings.action == "7d" else 15
        # the last few parsed sides: successive edits of one file share a text (new_i == old_i+1)
        self._recent: dict[str, tuple[tok.ParsedSource, act.TreeFacts]] = {}

    @property
    def vocab(self) -> Vocabulary:
        return text_tokens.TEXT_VOCAB if self._text else tok.VOCAB

    @property
    def action_names(self) -> list[str]:
        return list(act.ACTION_NAMES_7 if self._dims == 7 else act.ACTION_NAMES_15)

    def fingerprint(self) -> str:
        """Vocabulary and the options that change transitions; ``embedded_pairs`` only changes the
        embedded source and is in its fingerprint."""
        items = f"action={self.settings.action!r},tokens={self.settings.tokens!r}"
        return f"{self.name}:{self.vocab.version}:{items}"

    def tokenize(self, text: str) -> list[int]:
        return text_tokens.tokenize(text) if self._text else tok.tokenize(text)

    def accepts_file(self, path: str) -> bool:
        return path.endswith(".py")

    def accepts_text(self, path: str, old: str, new: str) -> bool:
        return "\x00" not in old and "\x00" not in new

    # -- the embedded source: seeded edits of the standard library (+ the working directory's history)
    _EMBEDDED = ("embedded:stdlib", DEFAULT_SOURCE)

    def _local_history(self) -> str | None:
        """``git:.`` when the working directory is a git repository with commits, else ``None``."""
        from wmkit.sources import source_fingerprint

        try:
            return source_fingerprint("git:.")
        except DataError:
            return None

    def rows(self, source: str) -> Iterable[Mapping[str, Any]] | None:
        """``embedded:stdlib`` -> the generator's rows (``data.embedded_pairs``);
        ``embedded:stdlib+git`` -> those, then the rows of ``git:.`` when there is a history."""
        source = source.strip()
        if source not in self._EMBEDDED:
            return None
        return self._embedded_rows(source == DEFAULT_SOURCE and self._local_history() is not None)

    def _embedded_rows(self, with_history: bool) -> Iterable[Mapping[str, Any]]:
        from wmkit.sources import open_rows

        yield from gen.generate(self.settings.embedded_pairs)
        if with_history:
            yield from open_rows("git:.", domain=self)

    def source_fingerprint(self, source: str) -> str | None:
        source = source.strip()
        if source not in self._EMBEDDED:
            return None
        own = gen.fingerprint(self.settings.embedded_pairs)
        history = self._local_history() if source == DEFAULT_SOURCE else None
        return own + (f"+{history}" if history else "")

    def _analyse(self, text: str) -> tuple[tok.ParsedSource, act.TreeFacts]:
        hit = self._recent.get(text)
        if hit is not None:
            return hit
        parsed = tok.parse_source(text)
        facts = act.facts_from_nodes(parsed.nodes, parsed.parents) if parsed.ok else act.PARSE_FAILED
        if self._text:
            parsed.tokens = text_tokens.with_text(parsed, text)
        result = (parsed, facts)
        if len(self._recent) >= 4:
            self._recent.pop(next(iter(self._recent)))
        self._recent[text] = result
        # the nodes are only needed for the facts; drop them so the cache stays small
        parsed.nodes, parsed.parents = [], []
        return result

    def transition(self, row: Mapping[str, Any]) -> Transition:
        old = row.get("old_contents") or ""
        new = row.get("new_contents") or ""
        if old == new:
            raise SkipRow("unchanged")
        before, old_facts = self._analyse(old)
        after, new_facts = self._analyse(new)
        action = act.action_from_facts(old, new, old_facts, new_facts, self._dims)
        return Transition(before=before.tokens, after=after.tokens, action=action, labels=act.labels_of(action))

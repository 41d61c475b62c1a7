"""The ``code`` domain: Python files before and after a commit (reference §1-§2).

State = the AST token sequence of a whole file (:mod:`wmkit_code.tokenizer`); action = the 7-D or
15-D edit vector (:mod:`wmkit_code.actions`); labels = ``edit_type``, ``scope`` and ``joint``.
Each side of a row is parsed exactly once; the parse feeds both the tokens and the action.
"""

from __future__ import annotations

from typing import Any, Mapping

from wmkit.domain import Domain, SkipRow, Transition, Vocabulary

from wmkit_code import actions as act
from wmkit_code import text_tokens
from wmkit_code import tokenizer as tok
from wmkit_code.plugin import OPTIONS

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
    options = OPTIONS
    default_source = "git:."
    default_recipe = "quickstart"
    label_names = LABEL_NAMES
    #: the edit shows as changed tokens, so action encoders may read them
    action_inputs = ("vector", "edit_tokens")

    def __init__(self, options: Mapping[str, Any] | None = None):
        super().__init__({"action": OPTIONS["action"].default, "tokens": OPTIONS["tokens"].default,
                          **dict(options or {})})
        self.settings["action"] = OPTIONS["action"].check(self.settings["action"], "data.action")
        self.settings["tokens"] = OPTIONS["tokens"].check(self.settings["tokens"], "data.tokens")
        self._text = self.settings["tokens"] == "ast_text"
        self._dims = 7 if self.settings["action"] == "7d" else 15
        # the last few parsed sides: successive edits of one file share a text (new_i == old_i+1)
        self._recent: dict[str, tuple[tok.ParsedSource, act.TreeFacts]] = {}

    @property
    def vocab(self) -> Vocabulary:
        return text_tokens.TEXT_VOCAB if self._text else tok.VOCAB

    @property
    def action_names(self) -> list[str]:
        return list(act.ACTION_NAMES_7 if self._dims == 7 else act.ACTION_NAMES_15)

    def tokenize(self, text: str) -> list[int]:
        return text_tokens.tokenize(text) if self._text else tok.tokenize(text)

    def accepts_file(self, path: str) -> bool:
        return path.endswith(".py")

    def accepts_text(self, path: str, old: str, new: str) -> bool:
        return "\x00" not in old and "\x00" not in new

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

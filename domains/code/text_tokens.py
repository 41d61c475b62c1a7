"""A code vocabulary that also sees comments and string contents (``data.tokens = "ast_text"``).

The AST vocabulary (:mod:`wmkit_code.tokenizer`) reduces every string constant to ``CONST_str`` and
never sees a comment, so comment- and docstring-only commits tokenize to identical sequences and are
dropped as ``no_token_change``. This vocabulary keeps the AST tokens and appends, before ``EOS``:

- for every string constant (breadth-first, as the AST walk visits them): ``STRING`` and the hashed
  words of its value;
- for every comment (in source order, from the standard library's :mod:`tokenize`): ``COMMENT`` and
  its hashed words.

Words are runs of letters, digits and underscores, lower-cased, at most :data:`WORDS_PER_TEXT` per
string or comment, bucketed ``TEXT + fnv1a_32(word) % 512``. It extends ``code-ast-1``'s id table
with disjoint ranges; any change here must bump :data:`TEXT_VOCAB_VERSION`.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize as std_tokenize

from wmkit.domain import Vocabulary
from wmkit_code import tokenizer as tok

TEXT_VOCAB_VERSION = "code-ast-text-1"
TEXT_BUCKETS = 512
WORDS_PER_TEXT = 16

STRING_MARK = tok.VOCAB_SIZE
COMMENT_MARK = tok.VOCAB_SIZE + 1
TEXT_BASE = tok.VOCAB_SIZE + 2
TEXT_VOCAB_SIZE = TEXT_BASE + TEXT_BUCKETS

TEXT_RANGES = {**tok.RANGES, "text_marks": (STRING_MARK, TEXT_BASE), "text_words": (TEXT_BASE, TEXT_VOCAB_SIZE)}
TEXT_VOCAB = Vocabulary(size=TEXT_VOCAB_SIZE, pad_id=tok.PAD, version=TEXT_VOCAB_VERSION, ranges=TEXT_RANGES)

_WORD = re.compile(r"[A-Za-z0-9_]+")


def word_tokens(text: str) -> list[int]:
    """The hashed word tokens of one string or comment (at most :data:`WORDS_PER_TEXT`)."""
    words = _WORD.findall(text)[:WORDS_PER_TEXT]
    return [TEXT_BASE + tok.fnv1a_32(w.lower().encode("utf-8")) % TEXT_BUCKETS for w in words]


def comments(text: str) -> list[str]:
    """The comments of a source in order (none when it does not tokenize)."""
    try:
        return [t.string.lstrip("#") for t in std_tokenize.generate_tokens(io.StringIO(text).readline)
                if t.type == std_tokenize.COMMENT]
    except (std_tokenize.TokenError, SyntaxError, ValueError):
        return []


def text_section(text: str, nodes: list) -> list[int]:
    """The tokens appended to the AST tokens: string contents (from ``nodes``, the parsed source's
    breadth-first node list), then comments."""
    out: list[int] = []
    for node in nodes:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append(STRING_MARK)
            out += word_tokens(node.value)
    for comment in comments(text):
        out.append(COMMENT_MARK)
        out += word_tokens(comment)
    return out


def with_text(parsed: tok.ParsedSource, text: str) -> list[int]:
    """``parsed.tokens`` with the text section inserted before ``EOS`` (a parse error stays as it is)."""
    if not parsed.ok or len(parsed.tokens) < 2:
        return list(parsed.tokens)
    return parsed.tokens[:-1] + text_section(text, parsed.nodes) + [tok.EOS]


def tokenize(text: str) -> list[int]:
    """Token ids of one Python source in the text-aware vocabulary."""
    return with_text(tok.parse_source(text), text)


def token_names(tokens) -> list[str]:
    """Human-readable names, extending :func:`wmkit_code.tokenizer.token_names`."""
    out = []
    for t in tokens:
        t = int(t)
        if t == STRING_MARK:
            out.append("STRING")
        elif t == COMMENT_MARK:
            out.append("COMMENT")
        elif TEXT_BASE <= t < TEXT_VOCAB_SIZE:
            out.append(f"WORD_{t - TEXT_BASE}")
        else:
            out.extend(tok.token_names([t]))
    return out

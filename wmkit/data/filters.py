"""The changed-token filter: how many words an edit changes (the reference's "too few changed tokens")."""

from __future__ import annotations

import difflib
from collections import Counter

def _trim(a: list[str], b: list[str]) -> tuple[list[str], list[str]]:
    head = 0
    limit = min(len(a), len(b))
    while head < limit and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < limit - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    return a[head:len(a) - tail], b[head:len(b) - tail]


def _words(lines) -> int:
    return sum(len(line.split()) for line in lines)


def changed_tokens(old: str, new: str) -> int:
    """Changed tokens of an edit: whitespace-separated words on the lines a line diff adds or removes.

    The common leading and trailing lines are trimmed, then ``difflib.SequenceMatcher`` (no junk
    heuristic) aligns the rest; every word on a deleted, inserted or replaced line counts once.
    This stands in for the reference's count of non-pad diff tokens (markers, up to 12 hashed words
    per changed or context line): it counts the words that changed, without markers or context.
    """
    a, b = _trim(old.splitlines(), new.splitlines())
    if not a or not b:
        return _words(a) + _words(b)
    count = 0
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op != "equal":
            count += _words(a[i1:i2]) + _words(b[j1:j2])
    return count


def has_changed_tokens(old: str, new: str, minimum: int) -> bool:
    """``changed_tokens(old, new) >= minimum``, usually without running the line diff.

    Lines whose multiset counts differ must be added or removed by any line diff, so their words are
    a lower bound; the words of all lines outside the common head and tail are an upper bound.
    """
    if minimum <= 0:
        return True
    a, b = _trim(old.splitlines(), new.splitlines())
    if _words(a) + _words(b) < minimum:
        return False
    ca, cb = Counter(a), Counter(b)
    lower = _words((ca - cb).elements()) + _words((cb - ca).elements())
    if lower >= minimum:
        return True
    return changed_tokens(old, new) >= minimum

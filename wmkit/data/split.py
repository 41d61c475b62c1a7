"""Train / validation / held-out split of prepared rows, and their stable row ids (see :mod:`wmkit.prepare`)."""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any, Mapping

from wmkit.errors import DataError

SPLIT_NAMES = {"train": 0, "val": 1, "valid": 1, "validation": 1, "test": 1, "dev": 1, "holdout": 1}
#: the split value of rows of the held-out repositories
HOLDOUT = 2
#: what the audit and the benchmarks call the row sets they draw from (``--split``), in messages
EVAL_SPLIT_LABELS = {"val": "the validation split", "holdout": "the held-out repositories"}
#: how to get more rows into each of them
EVAL_SPLIT_GROW = {"val": "a higher data.val_percent", "holdout": "more data.holdout_repos"}

def hash_split(key: str, val_percent: int, salt: str = "split:") -> int:
    """1 (val) if ``int(sha256(salt + key)[:8], 16) % 100 < val_percent`` else 0 (train)."""
    return int(int(hashlib.sha256((salt + key).encode()).hexdigest()[:8], 16) % 100 < val_percent)


#: salt of the hold-out drawn from a source whose split column is all "train": such data was often
#: split with the plain "split:" rule already (our mined commit sets are), so that rule would find no row
HOLDOUT_SALT = "holdout:"


def _split_key(row: Mapping[str, Any]) -> str:
    commit = str(row.get("commit") or "")
    if commit:
        return commit
    digest = hashlib.sha256()
    for part in (row.get("repos"), row.get("new_file"), row.get("old_contents"), row.get("new_contents")):
        digest.update(str(part or "").encode("utf-8", "surrogatepass") + b"\x00")
    return "content:" + digest.hexdigest()[:24]


def _split_column(row: Mapping[str, Any], key: str, source: str) -> int | None:
    """0/1 from the row's ``split`` column, or None when it has none."""
    value = row.get("split")
    if value is None or value == "":
        return None
    split = SPLIT_NAMES.get(str(value).strip().lower())
    if split is None:
        raise DataError(f"{source}: row {key}: split {value!r} is not one of {', '.join(SPLIT_NAMES)}; fix the "
                        f"split column or drop it to split by commit hash")
    return split


def _split_candidates(row: Mapping[str, Any], key: str, new_file: str, val_percent: int, source: str) -> tuple:
    """``(fixed, by_commit, by_file, holdout_by_commit, holdout_by_file)``: the column's split and the
    hash splits under either row id (which one applies is known once all rows are in: see
    :meth:`_Collector.finish`). The holdout pair is used when the column marks every row "train"."""
    fixed = _split_column(row, key, source)
    hashed = (hash_split(key, val_percent), hash_split(f"{key}:{new_file}", val_percent))
    holdout = ((hash_split(key, val_percent, HOLDOUT_SALT), hash_split(f"{key}:{new_file}", val_percent, HOLDOUT_SALT))
               if fixed == 0 else (0, 0))
    return (fixed, *hashed, *holdout)


def _unique_ids(keys: list[tuple[str, str]], per_commit: Counter) -> list[str]:
    """``commit`` when it appears once, else ``commit:new_file`` (``#2``, ``#3``... on exact repeats)."""
    seen: Counter = Counter()
    ids = []
    for key, new_file in keys:
        base = key if per_commit[key] == 1 else f"{key}:{new_file}"
        seen[base] += 1
        ids.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return ids

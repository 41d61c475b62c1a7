"""bench/reorderings_by_repo.py counts reorderings, and reverted ones, per repository."""

import importlib.util
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "reorderings_by_repo.py"


def _bench():
    spec = importlib.util.spec_from_file_location("reorderings_by_repo", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reorderings_and_their_reverts_are_counted_per_repository():
    x, y, z = [5, 6, 7, 0], [7, 6, 5, 0], [5, 6, 8, 0]
    before = np.array([x, y, x, x, y, x])
    after = np.array([y, x, z, y, x, x])
    repos = ["a", "a", "a", "b", "c", "c"]
    counts = _bench().reorderings_by_repo(before, after, repos, pad_id=0)
    # a: x->y and its revert y->x (each before is the other's after), x->z is no reordering;
    # b: x->y, but no pair of b ends at x; c: y->x whose before y is no after of c; x->x is no edit
    assert counts == {"a": {"pairs": 3, "reorderings": 2, "reverted": 2},
                      "b": {"pairs": 1, "reorderings": 1, "reverted": 0},
                      "c": {"pairs": 2, "reorderings": 1, "reverted": 0}}
    assert list(counts) == ["a", "c", "b"]  # most reverted first, then more pairs


def test_padding_does_not_make_a_reordering():
    before, after = np.array([[5, 6, 0, 0]]), np.array([[5, 0, 6, 0]])
    assert _bench().reorderings_by_repo(before, after, ["a"], pad_id=0)["a"]["reorderings"] == 1
    before, after = np.array([[5, 6, 0, 0]]), np.array([[5, 6, 6, 0]])
    assert _bench().reorderings_by_repo(before, after, ["a"], pad_id=0)["a"]["reorderings"] == 0

"""The changed region of a pair of token sequences, against a plain-Python reference."""

import numpy as np
import torch

from wmkit.edits import edit_span, edit_window

PAD = 0


def reference_span(b, a):
    b, a = [t for t in b if t != PAD], [t for t in a if t != PAD]
    start = 0
    while start < min(len(b), len(a)) and b[start] == a[start]:
        start += 1
    suffix = 0
    while suffix < min(len(b), len(a)) - start and b[len(b) - 1 - suffix] == a[len(a) - 1 - suffix]:
        suffix += 1
    return start, len(b) - suffix, len(a) - suffix


def padded(rows, length):
    out = np.zeros((len(rows), length), dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return torch.from_numpy(out)


def test_edit_span_matches_the_reference_on_random_edits():
    r = np.random.default_rng(0)
    befores, afters = [], []
    for _ in range(300):
        b = list(r.integers(1, 6, size=r.integers(1, 20)))
        a = list(b)
        for _ in range(r.integers(0, 3)):  # insert, delete or replace somewhere
            op, pos = r.integers(0, 3), int(r.integers(0, len(a) + 1))
            if op == 0:
                a.insert(pos, int(r.integers(1, 6)))
            elif op == 1 and len(a) > 1:
                a.pop(min(pos, len(a) - 1))
            elif a:
                a[min(pos, len(a) - 1)] = int(r.integers(1, 6))
        befores.append(b)
        afters.append(a)
    start, end_b, end_a = edit_span(padded(befores, 24), padded(afters, 24), PAD)
    for i in range(300):
        assert (int(start[i]), int(end_b[i]), int(end_a[i])) == reference_span(befores[i], afters[i]), (befores[i], afters[i])


def test_edit_window_layout():
    before = padded([[1, 2, 3, 4, 5, 6]], 8)
    after = padded([[1, 2, 9, 9, 9, 5, 6]], 8)  # 3, 4 -> 9, 9, 9
    window = edit_window(before, after, PAD, length=8, delete_id=20, insert_id=21)
    assert window.tolist() == [[20, 3, 4, 0, 21, 9, 9, 9]]
    same = edit_window(before, before, PAD, length=6, delete_id=20, insert_id=21)
    assert same.tolist() == [[20, 0, 0, 21, 0, 0]]  # nothing changed: markers only
    long = edit_window(padded([list(range(1, 9))], 8), padded([[1] + list(range(11, 18))], 8), PAD, length=6,
                       delete_id=20, insert_id=21)
    assert long.tolist() == [[20, 2, 3, 21, 11, 12]]  # each side cut to its half

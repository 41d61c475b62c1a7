"""Which training repositories would make a validation that can see reorderings? Counts per repository.

A reordering is a pair whose token window keeps every token and changes their order; its before is often
another pair's after (the reordering is reverted, or the same lines move back), and that is where a
prediction that does not move along the change retrieves the other pair. ``--tune-repos`` of
``bench/frozen_target_levers.py`` validates on whole training repositories: this prints, for every
repository that is not held out, its pairs, its reorderings and those whose before is token for token
the after of another pair of the same repository, most of the last first.

    python bench/reorderings_by_repo.py RUN_OR_CHECKPOINT [--json OUT]

The rows' repositories are read from the recipe's data source (its ``repos`` column), matched to the
prepared rows by commit; held-out repositories are left out.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import numpy as np


def reorderings_by_repo(before: np.ndarray, after: np.ndarray, repos: list[str], pad_id: int) -> dict[str, dict]:
    """``{repo: {"pairs", "reorderings", "reverted"}}`` of token windows ``before``/``after`` ``[N, L]``:
    reorderings keep the multiset of non-pad tokens and change the window; ``reverted`` ones have a before
    equal to the after of another pair of the same repository."""
    out: dict[str, dict] = {}
    repos_arr = np.asarray(repos)
    for repo in sorted(set(repos)):
        idx = np.flatnonzero(repos_arr == repo)
        afters = Counter(after[k].tobytes() for k in idx)
        counts = {"pairs": len(idx), "reorderings": 0, "reverted": 0}
        for k in idx:
            b, a = before[k], after[k]
            if np.array_equal(b, a) or not np.array_equal(np.sort(b[b != pad_id]), np.sort(a[a != pad_id])):
                continue
            counts["reorderings"] += 1
            # another pair's after: its own after differs from its before, so any match is another pair
            counts["reverted"] += int(afters[b.tobytes()] > 0)
        out[repo] = counts
    return dict(sorted(out.items(), key=lambda kv: (-kv[1]["reverted"], -kv[1]["pairs"], kv[0])))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--json")
    args = parser.parse_args(argv)

    from wmkit.checkpoint import load_checkpoint
    from wmkit.recipe import get_dotted
    from wmkit.runtime import load_data
    from wmkit.sources import open_rows

    lc = load_checkpoint(args.checkpoint)
    domain, prepared = load_data(lc.recipe, progress=False)
    source = get_dotted(lc.recipe, "data.source")
    commit_repo = {str(r.get("commit") or ""): str(r.get("repos") or "") for r in open_rows(source, domain=domain)}
    rows = np.concatenate([prepared.train_indices(), prepared.val_indices()])
    # a row id is its commit, or commit:file (#n on repeats) when the commit touches several files
    repos = [commit_repo.get(prepared.ids[i].split(":")[0].split("#")[0], "") for i in rows]
    counts = reorderings_by_repo(np.asarray(prepared.before[rows]), np.asarray(prepared.after[rows]), repos,
                                 domain.vocab.pad_id)
    for repo, c in counts.items():
        print(f"{repo or '(no repos column)':36s} pairs {c['pairs']:6d}  reorderings {c['reorderings']:4d}  "
              f"before = another pair's after {c['reverted']:3d}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(counts, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How long a full-validation audit takes, and where the time goes (encoding vs nearest-neighbour search).

    python bench/audit_speed.py                 # randomly initialised paper-size model, random tokens
    python bench/audit_speed.py RUN_OR_CKPT     # a real checkpoint and its data (tokens cached)

Options: ``--n`` validation pairs (5,000), ``--len`` tokens per side (512), ``--train-rows`` size of the
training split the near-duplicate check scans (35,404, as commits-py), ``--threads`` torch threads (2),
``--recipe`` the model recipe (the paper's ``loops3_auxpred_vicreg``), ``--geometry``, ``--json FILE``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from types import SimpleNamespace

import numpy as np


def random_setup(args):
    """A randomly initialised model of ``args.recipe`` and random prepared data of the asked size."""
    import torch

    from wmkit.layers import count_parameters
    from wmkit.model import build_world_model
    from wmkit.plugins import get_host
    from wmkit.recipe import load_recipe
    from wmkit.seed import seed_everything

    host = get_host()
    recipe = load_recipe(args.recipe, overrides=[f"data.max_len={args.len}"], host=host)
    vocab, action_dim = 700, 15
    seed_everything(0)
    model = build_world_model(recipe.values, vocab_size=vocab, pad_id=0, action_dim=action_dim,
                              resolve=host.resolve).eval()
    rng = np.random.default_rng(0)
    rows = args.n + args.train_rows
    # the model may add a CLS token; the data holds max_len tokens per side
    before = rng.integers(1, vocab, size=(rows, args.len), dtype=np.int32)
    after = before.copy()
    after[:, 100:140] = rng.integers(1, vocab, size=(rows, 40), dtype=np.int32)
    split = np.zeros(rows, dtype=np.uint8)
    split[: args.n] = 1
    prepared = SimpleNamespace(
        before=before, after=after, actions=rng.normal(size=(rows, action_dim)).astype(np.float32), split=split,
        labels={"edit_type": rng.integers(0, 3, rows).astype(np.int16)},
        trajectory=np.repeat(np.arange(rows // 4 + 1), 4)[:rows].astype(np.int32),
        ids=None, meta={}, train_indices=lambda: np.nonzero(split == 0)[0], val_indices=lambda: np.nonzero(split == 1)[0])
    domain = SimpleNamespace(name="code", vocab=SimpleNamespace(version="random", pad_id=0, size=vocab),
                             label_names={"edit_type": ["ADD", "DELETE", "MODIFY"]})
    params = count_parameters(model)
    return model, domain, prepared, f"random {args.recipe} model ({params:,} parameters incl. EMA target), " \
                                    f"random tokens, {args.n} val pairs x {args.len} tokens, {args.train_rows} train rows"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--len", type=int, default=512)
    parser.add_argument("--train-rows", type=int, default=35404)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--recipe", default="loops3_auxpred_vicreg")
    parser.add_argument("--geometry", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from wmkit.audit.core import audit_model, run_audit

    t0 = time.perf_counter()
    if args.checkpoint:
        result = run_audit(args.checkpoint, full_val=True, geometry=args.geometry, progress=True, save=False)
        what = f"checkpoint {result['checkpoint']} on {result['data_source']}"
    else:
        model, domain, prepared, what = random_setup(args)
        setup = time.perf_counter() - t0
        print(f"setup (build model, random data): {setup:.1f} s", file=sys.stderr)
        result = audit_model(model, domain, prepared, val_size=args.n, geometry=args.geometry, progress=True)
    t = result["timing"]
    total = t["total_s"]
    print(what)
    print(f"torch threads: {torch.get_num_threads()}; gallery N={result['gallery_size']}; "
          f"pairs encoded: {t['encoded_pairs']} (validation + equal-size train sample)")
    print(f"total audit time: {total:.1f} s")
    for key, label in (("load_s", "load checkpoint + data"), ("encode_s", "encoding (model forward)"),
                       ("search_s", "nearest-neighbour search (faiss)"), ("near_duplicates_s", "near-duplicate scan"),
                       ("metrics_s", "other metrics")):
        print(f"  {label:<34} {t[key]:7.2f} s  {100 * t[key] / total:5.1f}%")
    per_pair = t["encode_s"] / max(t["encoded_pairs"], 1)
    print(f"encoding: {1000 * per_pair:.1f} ms per pair on average (validation pairs: online(before), target(before), "
          f"target(after) + predictor; training sample: online(before), target(after) + predictor)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"what": what, "timing": t, "threads": torch.get_num_threads()}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

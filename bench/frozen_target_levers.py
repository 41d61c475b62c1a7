"""Can a loss form beat the linear edit model when the target encoder is held fixed? Minutes, not hours.

The EMA target (decay 0.99999) barely moves from its initialisation (audit: drift cos >= 0.9998), so a
checkpoint's target embeddings of every training, validation and held-out pair can be computed once
and a prediction head trained on them in seconds. The head is the ``token_bag`` lever's: target(before)
+ W · [removed counts, added counts] + b, W and b started at the ridge fit (the audit's linear edit
baseline), then trained with the ``infonce`` cost (cos / temperature over in-batch targets) at each
learning rate and temperature asked for. Printed per setting and checkpoint of the head: misses at
KNN@1 on validation and on the held-out repositories, plain and with token-identical after states
counted as found (``wmkit.audit.baselines.identical_states``), ``beats_copy`` and the mean squared error,
each first for copy (target(before) as the prediction) and the ridge fit, in both modes.

    python bench/frozen_target_levers.py RUN_OR_CHECKPOINT [--temperature 0.001 0.002] [--lr 1e-5]
        [--batch 32] [--steps 1000] [--json OUT]

With ``--head mlp`` the head is instead the ``token_bag`` action encoder as a recipe configures it
(``--option KEY=VALUE``, e.g. ``positions=true head_hidden=1024``), fit exactly as training's warm start
fits it (:func:`wmkit.warm_start.fit_action_encoder`: ridge, then ``init_steps`` AdamW steps of its MLP
head by mean squared error), with the validation and held-out mean squared error printed beside the
misses every ``--report-every`` steps:

    python bench/frozen_target_levers.py RUN_OR_CHECKPOINT --head mlp --option head=mlp positions=true \
        head_hidden=1024 init_steps=12000 --report-every 3000

With ``--tune-repos R ...`` the validation split is instead every pair of those training repositories,
which then leave the fit too: settings are chosen on repositories the fit never saw, as hard as the
held-out ones, and the held-out repositories stay out of every choice (the data is prepared once more,
holding those out as well, and its rows matched by id).

Settings must be chosen on the validation columns; the held-out ones are for reporting.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _encode(model, prepared, rows):
    from wmkit.audit.encoding import encode_targets

    return (encode_targets(model, prepared, rows, after_only=False),
            encode_targets(model, prepared, rows, after_only=True))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--temperature", type=float, nargs="+", default=[0.001, 0.002])
    parser.add_argument("--lr", type=float, nargs="+", default=[1e-5])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--report-every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--head", choices=("linear", "mlp"), default="linear",
                        help="linear: InfoNCE fine-tunes of the ridge head; mlp: the token_bag encoder's warm start")
    parser.add_argument("--option", nargs="+", action="append", default=[], metavar="KEY=VALUE",
                        help="[model.action] options of the token_bag encoder (--head mlp), TOML values; "
                             "repeat --option for several fits over the same encodings")
    parser.add_argument("--tune-repos", nargs="+", default=[], metavar="REPO",
                        help="training repositories (the repos column) to validate on instead, kept out of every fit")
    parser.add_argument("--json")
    args = parser.parse_args(argv)

    import torch
    import torch.nn.functional as F

    from wmkit import metrics
    from wmkit.audit.baselines import identical_states
    from wmkit.checkpoint import load_checkpoint
    from wmkit.edits import token_bags
    from wmkit.linear_edit import fit_linear_edit
    from wmkit.runtime import load_data

    lc = load_checkpoint(args.checkpoint)
    domain, prepared = load_data(lc.recipe, progress=False)
    splits = {"train": np.asarray(prepared.train_indices()), "val": np.asarray(prepared.val_indices()),
              "holdout": np.asarray(prepared.holdout_indices())}
    if not len(splits["holdout"]):
        sys.exit(f"{args.checkpoint}: its recipe holds out no repository (data.holdout_repos)")
    if args.tune_repos:
        splits["train"], splits["val"] = _tuning_split(lc.recipe, prepared, args.tune_repos)
        print(f"validating on {len(splits['val'])} pairs of {', '.join(args.tune_repos)}; fitting on "
              f"{len(splits['train'])} of the other training repositories", flush=True)
    t0 = time.perf_counter()
    data = {}
    for name, rows in splits.items():
        before, after = _encode(lc.model, prepared, rows)
        bags = token_bags(np.asarray(prepared.before[rows]), np.asarray(prepared.after[rows]),
                          domain.vocab.pad_id, domain.vocab.size)
        data[name] = {"rows": rows, "before": before, "after": after, "bags": bags,
                      "tokens": np.asarray(prepared.after[rows])}
    print(f"encoded {sum(len(r) for r in splits.values())} pairs' targets in {time.perf_counter() - t0:.0f}s",
          flush=True)

    def score(pred_of, name):
        d = data[name]
        pred = pred_of(d)
        plain = metrics.knn_accuracy(pred, d["after"], [1])[1]
        same = identical_states(d["tokens"], d["after"], {"model": pred})
        wins = metrics.row_cosines(pred, d["after"]) > metrics.row_cosines(d["before"], d["after"])
        n = len(pred)
        return {"misses": int(round((1 - plain) * n)),
                "misses_twins_found": int(round((1 - same["knn_at_1"]["model"]) * n)),
                "ceiling_misses": int(round((1 - same["ceiling_knn_at_1"]) * n)),
                "beats_copy": float(np.mean(wins)), "n": n, "mse": float(np.mean((pred - d["after"]) ** 2))}

    # the baselines every head is read against, in both modes: copy and the audit's linear edit model
    fit = fit_linear_edit(data["train"]["bags"], data["train"]["before"], data["train"]["after"])
    ridge_pred = lambda d: (d["before"] + d["bags"] @ fit["weights"] + fit["bias"]).astype(np.float32)  # noqa: E731
    baselines = {"copy": {s: score(lambda d: d["before"], s) for s in ("val", "holdout")},
                 "ridge": {s: score(ridge_pred, s) for s in ("val", "holdout")}, "alpha": fit["alpha"]}
    _print("copy (nothing changes)", baselines["copy"])
    _print("ridge (linear edit model)", baselines["ridge"])

    if args.head == "mlp":
        fits = [_warm_start_head(args, options, lc, domain, prepared, data, score) for options in args.option or [[]]]
        report = {**baselines, **(fits[0] if len(fits) == 1 else {"fits": fits})}
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(report, fh, indent=1)
        return 0

    report = {**baselines, "runs": []}

    train = {k: torch.tensor(v) for k, v in data["train"].items() if k in ("before", "after", "bags")}
    for lr in args.lr:
        for tau in args.temperature:
            torch.manual_seed(args.seed)
            head = torch.nn.Linear(train["bags"].shape[1], train["before"].shape[1])
            with torch.no_grad():
                head.weight.copy_(torch.tensor(fit["weights"].T, dtype=torch.float32))
                head.bias.copy_(torch.tensor(fit["bias"], dtype=torch.float32))
            opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.0)

            def pred_of(d):
                with torch.no_grad():
                    return (torch.tensor(d["before"]) + head(torch.tensor(d["bags"]))).numpy()

            for step in range(1, args.steps + 1):
                idx = torch.randint(0, len(train["bags"]), (args.batch,))
                pred = train["before"][idx] + head(train["bags"][idx])
                logits = F.normalize(pred, dim=-1) @ F.normalize(train["after"][idx], dim=-1).T / tau
                loss = F.cross_entropy(logits, torch.arange(args.batch))
                opt.zero_grad()
                loss.backward()
                opt.step()
                if step % args.report_every == 0 or step == args.steps:
                    row = {"lr": lr, "temperature": tau, "step": step,
                           **{s: score(pred_of, s) for s in ("val", "holdout")}}
                    report["runs"].append(row)
                    _print(f"infonce lr {lr:g} temperature {tau:g} step {step}", row)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)
    return 0


def _tuning_split(recipe, prepared, repos: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(train rows outside ``repos``, every row of ``repos``) of ``prepared``, found by preparing the data
    again with ``repos`` held out as well and matching row ids."""
    import copy

    from wmkit.errors import DataError
    from wmkit.recipe import get_dotted, set_dotted
    from wmkit.runtime import load_data

    values = copy.deepcopy(recipe)  # a checkpoint's recipe: the resolved values as a dict
    held = list(get_dotted(values, "data.holdout_repos") or [])
    set_dotted(values, "data.holdout_repos", held + [r for r in repos if r not in held])
    try:
        _, tuned = load_data(values, progress=False)
    except DataError as exc:  # a repository the data does not hold: one line, not a traceback
        sys.exit(f"--tune-repos {' '.join(repos)}: {exc}")
    ids = {prepared.ids[i]: i for i in range(len(prepared))}
    held_ids = set(prepared.ids[i] for i in prepared.holdout_indices())
    tune_ids = set(tuned.ids[i] for i in tuned.holdout_indices()) - held_ids
    if not tune_ids:
        sys.exit(f"--tune-repos {' '.join(repos)}: no pair of the data is in these repositories; name repositories "
                 f"of the repos column that are not held out already")
    tune = np.sort(np.fromiter((ids[t] for t in tune_ids), dtype=np.int64))
    train = np.setdiff1d(np.asarray(prepared.train_indices()), tune)
    return train, tune


def _warm_start_head(args, items, lc, domain, prepared, data, score) -> dict:
    """Fit the token_bag encoder the recipe options describe on the training pairs' frozen targets, as
    training's warm start does, and score target(before) + its embedding every ``--report-every`` steps."""
    import tomllib

    import torch

    from wmkit.encode import encode_states
    from wmkit.plugins import get_host
    from wmkit.warm_start import embed_rows, fit_action_encoder

    options = {"init": "ridge", "head": "mlp"}
    for item in items:
        key, _, value = item.partition("=")
        options[key] = tomllib.loads(f"v = {value}")["v"]
    torch.manual_seed(args.seed)
    cls = get_host().resolve("action_encoder", "token_bag")
    encoder = cls(action_dim=domain.action_dim, vocab_size=domain.vocab.size, pad_id=domain.vocab.pad_id,
                  dim=lc.model.dim, heads=1, options=options)
    device = torch.device("cpu")
    states = {name: torch.from_numpy(d["before"]).float() for name, d in data.items()}

    def row(step):
        out = {"step": step}
        for split in ("val", "holdout"):
            d = data[split]
            pred = d["before"] + embed_rows(encoder, prepared, d["rows"], states[split], device).numpy()
            out[split] = score(lambda _: pred, split)
        return out

    rows = []
    t0 = time.perf_counter()

    def report(step):
        rows.append(row(step))
        _print(f"mlp head step {step} ({time.perf_counter() - t0:.0f}s)", rows[-1])

    train = data["train"]
    fit = fit_action_encoder(encoder, prepared, train["rows"], train["before"].astype(np.float64), train["after"],
                             seed=args.seed, device=device, report=report, report_every=args.report_every,
                             encode=lambda tokens: encode_states(lc.model, tokens, target=True))
    if not rows or rows[-1]["step"] != encoder.warm_start_steps:
        report(encoder.warm_start_steps)
    ridge_only = {k: v for k, v in fit.items() if k != "residual"}
    return {"options": options, "fit": ridge_only, "residual": fit.get("residual"), "rows": rows}


def _print(label: str, row: dict) -> None:
    parts = []
    for split in ("val", "holdout"):
        s = row[split]
        mse = f", MSE {s['mse']:.3g}" if "mse" in s else ""
        parts.append(f"{split} misses {s['misses']} (twins found: {s['misses_twins_found']}, ceiling "
                     f"{s['ceiling_misses']}) of {s['n']}, beats copy {s['beats_copy']:.1%}{mse}")
    print(f"{label}: " + "; ".join(parts), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())

"""wmkit audit: verdict rules, memorisation checks, geometry, compare — on a crafted fake model.

The fake world model reads a row id from token 0 and looks its embeddings up in fixed tables, so
each test controls exactly what "online", "target" and "prediction" are: a perfect predictor, one
that ignores the action, a collapsed readout, one that memorises the training rows. Checkpoint and
data loading are replaced by fakes (monkeypatched), so only the audit's own logic is under test;
``test_audit_end_to_end_real_checkpoint`` runs the real pipeline on a tiny trained model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from rich.console import Console

import wmkit.checkpoint as ckpt_mod
import wmkit.runtime as runtime_mod
from wmkit import metrics
from wmkit.audit import core, geometry, memorisation, verdict
from wmkit.audit import render_report, run_audit, write_html
from wmkit.errors import CheckpointError, DataError
from wmkit.model import Embeddings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

N_ROWS, N_VAL, DIM, ADIM, LEN, LOOPS = 400, 150, 16, 4, 12, 3


class FakeModel(torch.nn.Module):
    """Embeddings from tables indexed by the row id in token 0 (minus 1).

    mode: "perfect" (pred = z + a W, the true change), "ignores" (pred = z + mean change),
    "collapsed" (every embedding the same vector), "memorise" (perfect on train rows, noise on val).
    """

    starts_from_target = False  # predictions are P(z, a), not target(before) + a change

    def __init__(self, z_before, w, actions, mode, train_rows=()):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.zb = torch.as_tensor(z_before, dtype=torch.float32)
        self.w = torch.as_tensor(w, dtype=torch.float32)
        self.za = self.zb + torch.as_tensor(actions, dtype=torch.float32) @ self.w
        self.mode = mode
        self.train_rows = torch.zeros(len(z_before), dtype=torch.bool)
        self.train_rows[list(train_rows)] = True
        g = torch.Generator().manual_seed(5)
        self.noise = torch.randn(len(z_before), self.zb.shape[1], generator=g)
        self.loop_scale = torch.tensor([0.3, 0.7, 1.0])

    def _rows(self, tokens):
        return tokens[:, 0].long() - 1

    def predict_with(self, z, actions, base=None):
        actions = getattr(actions, "vector", actions)  # ActionInputs or a bare action tensor
        if self.mode == "collapsed":
            return torch.ones_like(z)
        if self.mode == "ignores":
            return z + self.mean_shift
        return z + actions @ self.w

    @property
    def mean_shift(self):
        return (self.za - self.zb).mean(0)

    def embed(self, before, after, actions, loops=True):
        r = self._rows(before)
        zb, za = self.zb[r], self.za[r]
        if self.mode == "collapsed":
            zb = za = torch.ones_like(zb) + 1e-9 * self.noise[r]
        pred = self.predict_with(zb, actions)
        if self.mode == "memorise":
            pred = torch.where(self.train_rows[r][:, None], pred, self.noise[r] * 3)
        lb = [zb * s for s in self.loop_scale] if loops else None
        la = [za * s + 0.01 * i for i, s in enumerate(self.loop_scale)] if loops else None
        return Embeddings(online_before=zb, online_after=za, target_before=zb, target_after=za, pred=pred,
                          action_embedding=actions @ self.w, predictor_input=zb, online_loops_before=lb,
                          online_loops_after=la)


def make_data(seed=0, n=N_ROWS, n_val=N_VAL):
    r = np.random.default_rng(seed)
    before = r.integers(3, 50, size=(n, LEN)).astype(np.int32)
    before[:, 0] = np.arange(1, n + 1)  # row id (the fake model reads it)
    after = before.copy()
    after[:, 1:4] = r.integers(3, 50, size=(n, 3))
    split = np.zeros(n, dtype=np.uint8)
    split[r.choice(n, n_val, replace=False)] = 1
    actions = r.normal(size=(n, ADIM)).astype(np.float32)
    edit = r.integers(0, 3, n).astype(np.int16)
    trajectory = np.repeat(np.arange(n // 4), 4).astype(np.int32)
    data = SimpleNamespace(
        before=before, after=after, actions=actions, split=split,
        labels={"edit_type": edit, "scope": np.where(r.random(n) < 0.9, 0, 1).astype(np.int16)},
        trajectory=trajectory, ids=[f"row{i}" for i in range(n)], meta={},
        train_indices=lambda: np.nonzero(split == 0)[0], val_indices=lambda: np.nonzero(split == 1)[0])
    # the true change is a linear function of the action, big enough to be retrievable
    z_before = r.normal(size=(n, DIM))
    w = r.normal(size=(ADIM, DIM)) * 1.5
    return data, z_before, w


class FakeDomain:
    name = "code"
    label_names = {"edit_type": ["ADD", "DELETE", "MODIFY"], "scope": ["local", "wide"]}
    default_source = "fake:default"
    action_names = [f"a{i}" for i in range(ADIM)]

    def __init__(self, version="v1"):
        self.vocab = SimpleNamespace(version=version, pad_id=0, size=50)


def install(monkeypatch, tmp_path, mode="perfect", *, info=None, domain=None, seed=0, run_dir=None, data_info=None):
    """Make run_audit see a fake checkpoint at tmp_path/run (returned) with the given model mode."""
    data, z_before, w = make_data(seed)
    train_rows = np.nonzero(data.split == 0)[0]
    model = FakeModel(z_before, w, data.actions, mode, train_rows)
    run = run_dir or (tmp_path / "run")
    ckpt = run / "checkpoints" / "step-100"
    ckpt.mkdir(parents=True, exist_ok=True)
    info = dict({"step": 100, "domain": "code", "vocab_version": "v1", "action_dim": ADIM, "metrics": {}}, **(info or {}))
    recipe = {"data": {"source": "fake:rows", "domain": "code", "max_len": LEN}, "meta": {"name": f"fake-{mode}"}}
    loaded = SimpleNamespace(model=model, recipe=recipe, info=info, run_dir=run, path=ckpt)
    monkeypatch.setattr(ckpt_mod, "resolve_checkpoint", lambda p, which="best": ckpt)
    monkeypatch.setattr(ckpt_mod, "load_checkpoint", lambda p, host=None, **kw: loaded)
    monkeypatch.setattr(runtime_mod, "load_data",
                        lambda recipe, source=None, host=None, progress=True, **kw: (domain or FakeDomain(), data))
    return run, data


def audit(monkeypatch, tmp_path, mode="perfect", **kw):
    opts = {k: kw.pop(k) for k in ("full_val", "val_size", "geometry", "data") if k in kw}
    run, data = install(monkeypatch, tmp_path, mode, **kw)
    return run_audit(run, progress=False, **opts), run, data


# -- sampling helpers --------------------------------------------------------------------------
def test_choose_size_rules():
    assert core.choose_size(4104, full_val=True) == 4104
    assert core.choose_size(9000, full_val=True) == 5000
    assert core.choose_size(9000) == core.DEFAULT_VAL_SIZE
    assert core.choose_size(300, val_size=200, full_val=True) == 200
    with pytest.raises(DataError, match=r"--val-size 500: only 300 pairs of the validation split were never trained on"):
        core.choose_size(300, val_size=500)
    with pytest.raises(DataError, match="at least"):
        core.choose_size(5, full_val=True)
    with pytest.raises(DataError, match=r"--val-size 500: only 300 pairs of the held-out repositories"):
        core.choose_size(300, val_size=500, split="holdout")
    with pytest.raises(DataError, match="only 5 pairs in the held-out repositories .* more data.holdout_repos"):
        core.choose_size(5, full_val=True, split="holdout")
    with pytest.raises(DataError, match="data.val_percent"):
        core.choose_size(5, full_val=True)


def test_derangement_has_no_fixed_point_and_is_seeded():
    p = core.derangement(101)
    assert sorted(p.tolist()) == list(range(101))
    assert not np.any(p == np.arange(101))
    assert np.array_equal(p, core.derangement(101))


def test_sample_rows_independent_of_anything_but_seed():
    idx = np.arange(0, 1000, 3)
    a, b = core.sample_rows(idx, 50), core.sample_rows(idx[::-1], 50)
    assert np.array_equal(a, b) and len(np.unique(a)) == 50 and np.all(np.isin(a, idx))
    assert np.array_equal(core.sample_rows(idx, 5000), idx)


# -- full audits on fake models ----------------------------------------------------------------
def test_healthy_audit_numbers_and_json_keys(monkeypatch, tmp_path):
    result, run, data = audit(monkeypatch, tmp_path, "perfect")
    required = ["gallery_size", "knn_at_1", "knn_at_5", "knn_at_10", "knn_at_50", "random_knn_at_1",
                "random_knn_at_5", "erank_online", "erank_target", "erank_pred", "cross_diag", "cross_off", "gap",
                "lift", "copy_cos", "delta_cos", "action_sensitivity", "warnings"]
    for key in required:
        assert key in result, key
    n = N_VAL
    assert result["gallery_size"] == n and result["val_rows_available"] == n
    assert result["knn_at_1"] == 1.0
    assert result["random_knn_at_1"] == pytest.approx(1 / n) and result["random_knn_at_5"] == pytest.approx(5 / n)
    assert result["verdict"] == "healthy", result["reasons"]
    # independent recomputation of a few numbers from the fake tables
    _, zb, w = make_data(0)
    rows = np.nonzero(data.split == 1)[0]
    za = zb[rows] + data.actions[rows] @ w
    assert result["cross_diag"] == pytest.approx(1.0, abs=1e-5)
    assert result["erank_target"] == pytest.approx(metrics.effective_rank_uncentred(za, normalize_rows=True), rel=1e-4)
    assert result["copy_cos"] == pytest.approx(np.mean(np.sum(zb[rows] * za, 1) / np.linalg.norm(zb[rows], axis=1)
                                                       / np.linalg.norm(za, axis=1)), rel=1e-4)
    # a predictor that uses the action loses retrieval when actions are swapped
    a = result["action_sensitivity"]
    assert a["ignores_action"] is False and a["knn_at_5"] < 0.5 * result["knn_at_5"]
    assert a["identical_action_fraction"] == 0.0
    # saved for compare, JSON-clean
    saved = json.loads((run / "audit.json").read_text())
    assert saved["knn_at_1"] == 1.0 and saved["format"] == core.AUDIT_FORMAT
    assert result["saved_to"] == str(run / "audit.json")


def test_ignores_action_verdict(monkeypatch, tmp_path):
    result, _, _ = audit(monkeypatch, tmp_path, "ignores")
    a = result["action_sensitivity"]
    assert a["knn_at_5"] == pytest.approx(result["knn_at_5"])  # shuffling changes nothing
    assert a["ignores_action"] is True
    assert "ignores action" in result["verdicts"]
    assert any(w["kind"] == "ignores_action" for w in result["warnings"])
    assert "ignores the action" in a["statement"]


def test_collapsed_readout_verdict(monkeypatch, tmp_path):
    result, _, _ = audit(monkeypatch, tmp_path, "collapsed")
    assert result["verdict"] == "collapsed readout"
    assert result["erank_centred"]["online"]["normalised"] < verdict.COLLAPSE_NORMALISED_ERANK
    assert result["std_l2"]["online"] < 1e-6
    assert result["erank_online"] == pytest.approx(1.0, abs=1e-3)


def test_memorising_verdict_from_train_val_gap(monkeypatch, tmp_path):
    result, _, _ = audit(monkeypatch, tmp_path, "memorise")
    gap = result["train_gap"]
    assert gap["sample_size"] == N_VAL
    assert gap["train"]["knn_at_5"] == 1.0 and gap["val"]["knn_at_5"] < 0.2
    assert gap["memorising"] is True
    assert "memorising" in result["verdicts"]
    assert any(w["kind"] == "memorisation" for w in result["warnings"])


def test_val_size_too_large_is_one_clear_line(monkeypatch, tmp_path):
    run, _ = install(monkeypatch, tmp_path)
    with pytest.raises(DataError) as exc:
        run_audit(run, val_size=5000, progress=False)
    assert "\n" not in str(exc.value) and f"only {N_VAL}" in str(exc.value)


def test_val_size_subsample_prints_gallery(monkeypatch, tmp_path):
    result, _, _ = audit(monkeypatch, tmp_path, "perfect", val_size=40)
    assert result["gallery_size"] == 40 and result["random_knn_at_5"] == pytest.approx(5 / 40)
    console = Console(record=True, width=160)
    render_report(result, console)
    text = console.export_text()
    for k in (1, 5, 10, 50):
        line = next(l for l in text.splitlines() if l.strip().startswith(f"KNN@{k} "))
        assert "N=40" in line, line


def test_other_domain_and_vocab_refused(monkeypatch, tmp_path):
    run, _ = install(monkeypatch, tmp_path, info={"domain": "kernel"})
    with pytest.raises(CheckpointError, match="domain 'kernel'"):
        run_audit(run, progress=False)
    run, _ = install(monkeypatch, tmp_path, domain=FakeDomain(version="v2"))
    with pytest.raises(CheckpointError, match="vocabulary 'v1' is incompatible"):
        run_audit(run, progress=False)
    run, _ = install(monkeypatch, tmp_path, info={"action_dim": ADIM + 3})
    with pytest.raises(CheckpointError, match="actions"):
        run_audit(run, progress=False)


def test_training_warnings_and_knn_trend(monkeypatch, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    rows = []
    knn = {100: 0.30, 200: 0.40, 300: 0.25, 400: 0.15}
    for step in range(1, 401):
        rows.append({"step": step, "loss": 2.0 - step / 400})  # loss keeps falling
        if step in knn:
            rows.append({"event": "eval", "step": step, "knn_at_5": knn[step], "gallery_size": 128})
    rows.insert(10, {"event": "warning", "step": 9, "kind": "loss_explosion", "message": "loss 99 > 50x"})
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{\"step\": 401, \"lo")
    (run / "checkpoints" / "index.json").write_text(json.dumps({"latest": "step-400", "best": "step-200",
                                                                "steps": [100, 200, 300, 400]}))
    result, _, _ = audit(monkeypatch, tmp_path, "perfect", run_dir=run, info={"step": 400})
    kinds = [w["kind"] for w in result["warnings"]]
    assert "training:loss_explosion" in kinds and "knn_falling" in kinds and "metrics_log" in kinds
    trend = result["training_trend"]
    assert trend["basis"] == "checkpoints" and trend["peak_step"] == 200 and trend["falling_while_loss_falls"]


def test_knn_trend_not_flagged_when_loss_rises_or_drop_is_noise():
    steps = [{"step": s, "loss": 1.0 + s / 400} for s in range(1, 401)]  # loss rising
    evals = [{"event": "eval", "step": s, "knn_at_5": v, "gallery_size": 128}
             for s, v in ((100, 0.3), (200, 0.4), (300, 0.1))]
    assert not memorisation.knn_trend({"steps": steps, "evals": evals})["falling_while_loss_falls"]
    falling = [{"step": s, "loss": 2.0 - s / 400} for s in range(1, 401)]
    small = [{"event": "eval", "step": s, "knn_at_5": v, "gallery_size": 128} for s, v in ((100, 0.3), (200, 0.4), (300, 0.35))]
    assert not memorisation.knn_trend({"steps": falling, "evals": small})["falling_while_loss_falls"]


def test_near_duplicates_separate_same_edit_from_neighbouring_edit():
    r = np.random.default_rng(3)
    tb = r.integers(1, 300, size=(500, 200)).astype(np.int32)
    ta = tb.copy()
    ta[:, 10:13] = r.integers(1, 300, size=(500, 3))
    vb = r.integers(1, 300, size=(40, 200)).astype(np.int32)
    va = vb.copy()
    va[:, 5] = 7
    vb[0], va[0] = tb[17], ta[17]                      # exact duplicate transition
    vb[1], va[1] = tb[42].copy(), ta[42].copy()
    vb[1][155], va[1][155] = 299, 299                   # same edit, one untouched token differs elsewhere
    vb[2] = ta[99]                                      # the next edit of train row 99's file:
    va[2] = ta[99].copy()                               #   same content, another edit
    va[2][140:143] = [5, 6, 7]
    vb[3, 40:], va[3, 40:] = 0, 0                       # padding is ignored
    res = memorisation.near_duplicates(vb, va, tb, ta, pad_id=0, val_ids=[f"v{i}" for i in range(40)],
                                       train_ids=[f"t{i}" for i in range(500)])
    assert res["near_duplicates"] == 2 and res["exact_duplicates"] == 1
    assert {(e["val"], e["train"]) for e in res["examples"]} == {("v0", "t17"), ("v1", "t42")}
    assert res["fraction"] == pytest.approx(2 / 40)
    assert res["similar_content"] == 3  # v2 shares its content with t99, not its edit


def test_edit_sketch_of_unchanged_pairs_is_empty_and_equal():
    x = np.arange(1, 41, dtype=np.int32)[None, :]
    content, edit = memorisation.pair_sketches(x, x, 0)
    assert np.all(edit == np.iinfo(np.uint64).max)
    assert memorisation.sketch_jaccard(edit[0], edit[0], empty_equal=True) == 1.0
    assert memorisation.sketch_jaccard(edit[0], edit[0]) == 0.0


def test_sketch_jaccard_estimates_set_overlap():
    r = np.random.default_rng(4)
    base = r.integers(1, 10_000, size=(1, 400)).astype(np.int32)
    other = base.copy()
    other[0, 300:] = r.integers(1, 10_000, size=100)
    sa = memorisation.pair_sketches(base, base, 0)[0][0]
    sb = memorisation.pair_sketches(other, other, 0)[0][0]
    # true Jaccard of the 5-gram sets: shingles touching the last 100 tokens differ (plus 4 straddling)
    shared = 300 - 4
    true_j = shared / (2 * 396 - shared)
    assert memorisation.sketch_jaccard(sa, sb) == pytest.approx(true_j, abs=0.2)
    assert memorisation.sketch_jaccard(sa, sa) == 1.0


def test_geometry_probes_against_direct_metrics(monkeypatch, tmp_path):
    result, _, data = audit(monkeypatch, tmp_path, "perfect", geometry=True)
    geo = result["geometry"]
    _, zb, w = make_data(0)
    rows = np.nonzero(data.split == 1)[0]
    za = zb[rows] + data.actions[rows] @ w
    assert geo["loops"] == LOOPS
    scales = [0.3, 0.7, 1.0]
    for i, s in enumerate(scales):
        direct = metrics.signal_ratio(zb[rows] * s, za * s + 0.01 * i)
        assert geo["signal_ratio"][i] == pytest.approx(direct, rel=1e-4)
    assert geo["erank_states"]["erank"] == pytest.approx(metrics.effective_rank_centred(zb[rows]).erank, rel=1e-4)
    assert len(geo["loop_straightness"]) == LOOPS - 2
    for name in ("edit_type", "scope"):
        probe = geo["probes"][name]
        assert len(probe["from_before"]) == LOOPS
        for entry in probe["from_before"]:
            y = data.labels[name][rows]
            _, test = metrics.split_indices(len(y), geometry.PROBE_SEED)
            assert entry["majority_baseline"] == pytest.approx(np.bincount(y[test]).max() / len(test))
    traj = geo["trajectories"]
    assert traj["pairs"] > 0 and 0.0 <= traj["straightness"] <= 1.0
    assert "training split" in traj["source"]
    # the report and the HTML page render the geometry sections
    console = Console(record=True, width=160)
    render_report(result, console)
    assert "Linear probe 'edit_type'" in console.export_text()


def test_select_trajectory_rows_keeps_whole_trajectories():
    traj = np.array([0, 0, 1, 2, 2, 2, 3, 4, 4, -1, -1])
    rows = geometry.select_trajectory_rows(traj, np.arange(11), max_rows=100)
    assert set(traj[rows].tolist()) == {0, 2, 4}
    assert np.all(np.diff(rows) > 0)
    few = geometry.select_trajectory_rows(traj, np.arange(11), max_rows=2)
    ids, counts = np.unique(traj[few], return_counts=True)
    assert len(ids) == 1 and counts[0] == np.sum(traj == ids[0])


def test_label_probe_skips_single_class():
    x = np.random.default_rng(0).normal(size=(50, 4))
    out = geometry.label_probes([x], None, {"const": np.zeros(50, dtype=int)})
    assert "skipped" in out["const"]


# -- verdict rules on hand-made results --------------------------------------------------------
def base_result(**kw):
    r = {"embedding_dim": 128, "gallery_size": 5000, "knn_at_5": 0.05, "random_knn_at_5": 0.001,
         "erank_online": 50.0, "erank_target": 50.0, "erank_pred": 10.0,
         "erank_centred": {"online": {"erank": 40.0, "normalised": 0.31}},
         "std_l2": {"online": 0.06, "pred": 0.05},
         "action_sensitivity": {"ignores_action": False}, "train_gap": {"memorising": False}, **BEATEN_BASELINES}
    r.update(kw)
    return r


#: baselines a model with KNN@1 0.02 beats: healthy may be said only beside beaten baselines
BEATEN_BASELINES = {"knn_at_1": 0.02, "copy_knn_at_k": {"1": 0.01}, "beats_copy": {"rate": 0.8},
                    "linear_edit_knn_at_k": {"1": 0.015}}


def test_verdict_no_better_than_copy_or_linear_and_unverified_without_baselines():
    assert verdict.judge(base_result())["verdict"] == "healthy"
    out = verdict.judge(base_result(copy_knn_at_k={"1": 0.03}))
    assert out["verdict"] == "no better than copy" and "KNN@1 0.0200 <= copy's 0.0300" in out["reasons"][0]
    out = verdict.judge(base_result(beats_copy={"rate": 0.49}))
    assert out["verdict"] == "no better than copy" and "49.0% of pairs" in out["reasons"][0]
    assert verdict.judge(base_result(beats_copy={"rate": 0.5}))["verdict"] == "healthy"
    out = verdict.judge(base_result(linear_edit_knn_at_k={"1": 0.021}))
    assert out["verdict"] == "no better than a linear model of the edit"
    # a tie is not a win, against copy or the linear model
    assert verdict.judge(base_result(copy_knn_at_k={"1": 0.02}))["verdict"] == "no better than copy"
    out = verdict.judge(base_result(linear_edit_knn_at_k={"1": 0.02}))
    assert out["verdict"] == "no better than a linear model of the edit" and "<= the linear" in out["reasons"][0]
    # closer than the linear model on fewer than half the pairs: no better, whatever KNN@1 says
    out = verdict.judge(base_result(linear_edit={"model_closer_rate": 0.187}))
    assert out["verdict"] == "no better than a linear model of the edit" and "18.7% of pairs" in out["reasons"][0]
    assert verdict.judge(base_result(linear_edit={"model_closer_rate": 0.5}))["verdict"] == "healthy"
    # both fire: copy is the headline, linear is listed too, each with its numbers
    out = verdict.judge(base_result(copy_knn_at_k={"1": 0.5}, linear_edit_knn_at_k={"1": 0.9}))
    assert out["verdicts"][:2] == ["no better than copy", "no better than a linear model of the edit"]
    assert len(out["reasons"]) == 2
    # collapse rules come first
    out = verdict.judge(base_result(erank_pred=1.0, copy_knn_at_k={"1": 0.5}))
    assert out["verdicts"] == ["collapsed predictor", "no better than copy"]
    # no rule fired, but no baselines: never "healthy"
    for missing in ("copy_knn_at_k", "beats_copy", "linear_edit_knn_at_k"):
        r = base_result()
        del r[missing]
        assert verdict.judge(r)["verdict"] == verdict.UNVERIFIED


def test_verdict_rules_thresholds():
    assert verdict.judge(base_result())["verdict"] == "healthy"
    out = verdict.judge(base_result(erank_pred=4.9))  # < 0.1 x 50
    assert out["verdict"] == "collapsed predictor" and "erank of predictions 4.90" in out["reasons"][0]
    assert verdict.judge(base_result(erank_pred=5.1))["verdict"] == "healthy"
    out = verdict.judge(base_result(erank_centred={"online": {"erank": 5, "normalised": 0.04}}, erank_pred=1.0))
    assert out["verdict"] == "collapsed readout" and "collapsed predictor" in out["verdicts"]
    assert verdict.judge(base_result(knn_at_5=0.0015))["verdict"] == "not discriminative"
    def ignores(t1, t5, s1, s5, rnd=0.001):
        return verdict.ignores_action(true_knn1=t1, true_knn5=t5, shuffled_knn1=s1, shuffled_knn5=s5, random_knn5=rnd)

    assert ignores(0.03, 0.05, 0.028, 0.046) is True  # both keep >= 90%
    assert ignores(0.03, 0.05, 0.028, 0.044) is False  # KNN@5 keeps 88%
    assert ignores(0.03, 0.05, 0.026, 0.046) is False  # KNN@1 keeps 87%
    # the held-out kernel audit of cpu_beats_copy: KNN@5 saturates (copy alone retrieves 93.7% at k = 5)
    # while the action lifts KNN@1 from 81.1% (shuffled) to 99.1%: the model uses its action
    assert ignores(0.9910, 1.0, 0.8108, 0.9077, rnd=5 / 444) is False
    assert ignores(0.0010, 0.0015, 0.0010, 0.0015) is None
    assert verdict.memorising(0.30, 0.10) and not verdict.memorising(0.004, 0.001) and not verdict.memorising(0.3, 0.2)


# -- HTML ------------------------------------------------------------------------------------------
def test_write_html_uses_metrics_log(monkeypatch, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.5},
        {"event": "eval", "step": 2, "knn_at_1": 0.1, "knn_at_5": 0.3, "random_knn_at_5": 0.04, "cos": 0.5,
         "delta_cos": 0.4, "lift": 0.2, "copy_cos": 0.3, "erank_online": 9, "erank_target": 8, "erank_pred": 3,
         "gallery_size": 128}]))
    result, _, _ = audit(monkeypatch, tmp_path, "perfect", run_dir=run)
    page = write_html(result, tmp_path / "out" / "a.html").read_text()
    assert "training loss terms" in page and "validation probe KNN (gallery N=128)" in page
    assert f"KNN@k, gallery N={N_VAL}" in page


# -- compare ---------------------------------------------------------------------------------------
def test_compare_reads_saved_audits_and_reruns_stale(monkeypatch, tmp_path):
    from wmkit import compare

    result, run, _ = audit(monkeypatch, tmp_path, "perfect")
    calls = []
    monkeypatch.setattr(compare, "run_audit", lambda p, **kw: calls.append(p) or dict(result, checkpoint_name="fresh"))
    named = compare.compare_results([run])
    assert calls == [] and named[0][1]["knn_at_1"] == 1.0  # saved full-val audit reused
    compare.compare_results([run], val_size=20)  # asks another gallery size: re-run
    assert len(calls) == 1
    other = dict(result, gallery_size=20, knn_at_5=0.5)
    table = compare.comparison_table([("a", result), ("b", other)])
    console = Console(record=True, width=200)
    console.print(table)
    text = console.export_text()
    assert "gallery sizes differ" in text and "KNN@5" in text and "50.00%" in text


# -- end to end on a real (tiny) trained run ---------------------------------------------------------
TOY = Path(__file__).parent / "fixtures" / "wmkit_toy"
TOY_TINY = ["model.dim=32", "model.heads=2", "optim.batch_size=16", "eval.probe_size=16", "data.max_len=16",
            "train.eval_every=3", "train.save_every=4", "train.steps=8"]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A toy-domain run trained for 8 steps (shared by the end-to-end tests of this module)."""
    import sys

    from wmkit.plugins import PluginHost, reset_host
    from wmkit.recipe import load_recipe
    from wmkit.train import train

    sys.path.insert(0, str(TOY))
    try:
        import wmkit_toy.plugin

        host = PluginHost()
        reset_host(host)
        record = host.register_plugin(wmkit_toy.plugin, "toy", distribution="wmkit-toy", version="0.1.0")
        assert record.status == "ok", record.error
        recipe = load_recipe(None, domain="toy", overrides=TOY_TINY, host=host, environ={})
        run = tmp_path_factory.mktemp("toy") / "run"
        train(recipe, out=run, host=host, live=False)
        yield run, host
    finally:
        reset_host(None)
        sys.path.remove(str(TOY))


def test_audit_end_to_end_real_checkpoint(toy_run, tmp_path):
    run, host = toy_run
    result = run_audit(run, geometry=True, progress=False, host=host)
    index = json.loads((run / "checkpoints" / "index.json").read_text())
    assert result["checkpoint_name"] == index["best"]
    n = result["gallery_size"]
    assert n == result["val_rows_available"] >= core.MIN_VAL_SIZE
    assert result["random_knn_at_5"] == pytest.approx(min(5, n) / n)
    assert 0.0 <= result["knn_at_1"] <= result["knn_at_5"] <= result["knn_at_50"] <= 1.0
    assert result["train_gap"]["sample_size"] == n
    assert result["verdict"] in verdict.VERDICT_ORDER + (verdict.HEALTHY,)
    assert "rule" in result["geometry"]["probes"]
    assert len(result["geometry"]["signal_ratio"]) == result["geometry"]["loops"] >= 1
    assert json.loads((run / "audit.json").read_text())["knn_at_1"] == result["knn_at_1"]
    json.dumps(result, allow_nan=False)  # strictly JSON
    console = Console(record=True, width=160)
    render_report(result, console)
    assert console.export_text().startswith("verdict: ")
    page = write_html(result, tmp_path / "audit.html").read_text()
    assert "training loss terms" in page  # read from the run's metrics.jsonl


def test_audit_refuses_corrupted_and_incompatible_checkpoints(toy_run, tmp_path):
    import shutil

    run, host = toy_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    ckpt = copy / "checkpoints" / json.loads((copy / "checkpoints" / "index.json").read_text())["best"]
    meta = json.loads((ckpt / "checkpoint.json").read_text())
    (ckpt / "checkpoint.json").write_text(json.dumps(dict(meta, vocab_version="toy-0")))
    with pytest.raises(CheckpointError, match="vocabulary 'toy-0' is incompatible") as exc:
        run_audit(ckpt, progress=False, host=host)
    assert "\n" not in str(exc.value)
    (ckpt / "checkpoint.json").write_text(json.dumps(meta))
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        run_audit(ckpt, progress=False, host=host)
    with pytest.raises(CheckpointError, match="no such run"):
        run_audit(tmp_path / "missing", progress=False, host=host)
    with pytest.raises(DataError, match="--val-size 100000"):
        run_audit(run, val_size=100000, progress=False, host=host, save=False)


def test_partial_encoding_matches_full_embed(toy_run):
    """Asking only for the passes needed gives the same embeddings as ``model.embed`` (all passes)."""
    from wmkit.checkpoint import load_checkpoint
    from wmkit.runtime import load_data

    run, host = toy_run
    lc = load_checkpoint(run, host=host)
    _, data = load_data(lc.recipe, host=host, progress=False)
    rows = np.asarray(data.val_indices())[:20]

    class EmbedOnly:  # hides encode(): forces the model.embed path
        def __init__(self, model):
            self.model = model

        def parameters(self):
            return self.model.parameters()

        def eval(self):
            return self

        def embed(self, *a, **kw):
            return self.model.embed(*a, **kw)

    full = core.encode(EmbedOnly(lc.model), data, rows, loops=True, chunk=7)
    part = core.encode(lc.model, data, rows, loops=False, parts=frozenset(), chunk=7)
    for key in ("online_before", "target_after", "pred", "predictor_input"):
        np.testing.assert_allclose(getattr(part, key), getattr(full, key), rtol=1e-4, atol=1e-5)
    assert part.online_after is None and part.target_before is None and part.loops_before is None
    every = core.encode(lc.model, data, rows, loops=True, chunk=7)
    for key in ("online_after", "target_before"):
        np.testing.assert_allclose(getattr(every, key), getattr(full, key), rtol=1e-4, atol=1e-5)
    for a, b in zip(every.loops_before, full.loops_before):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_metrics_log_can_stop_at_the_audited_checkpoint(tmp_path):
    from wmkit.audit import memorisation

    rows = [{"step": s, "loss": 1.0 / s} for s in range(1, 7)]
    rows += [{"event": "eval", "step": s, "knn_at_5": k, "gallery_size": 128} for s, k in ((2, 0.5), (4, 0.2), (6, 0.1))]
    rows += [{"event": "warning", "step": 5, "kind": "memorisation", "message": "m"}]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    full = memorisation.read_metrics_log(path)
    early = memorisation.read_metrics_log(path, up_to_step=3)
    assert len(full["steps"]) == 6 and len(full["evals"]) == 3 and len(full["warnings"]) == 1
    assert [r["step"] for r in early["steps"]] == [1, 2, 3]
    assert [e["step"] for e in early["evals"]] == [2] and early["warnings"] == []


def test_verdict_memorising_when_probe_knn_falls_while_loss_falls():
    base = {"knn_at_5": 0.6, "random_knn_at_5": 0.1, "gallery_size": 100, **BEATEN_BASELINES}
    assert verdict.judge(base)["verdict"] == verdict.HEALTHY
    falling = dict(base, training_trend={"falling_while_loss_falls": True, "peak_knn_at_5": 0.9, "peak_step": 100})
    out = verdict.judge(falling)
    assert out["verdict"] == "memorising" and "step 100" in out["reasons"][0]

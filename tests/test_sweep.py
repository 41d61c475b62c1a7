"""wmkit sweep: plans and their bad input, a killed and resumed 2 x 2 sweep reported with the numbers
of its runs' audits, the Ray executor, and wmkit sweep report."""

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from wmkit.testing import write_commitpack_jsonl
from conftest import descendants

REPO = Path(__file__).resolve().parents[1]
RECIPE = "recipes/loops3_auxpred_vicreg.toml"
TINY = ["optim.batch_size=8", "eval.probe_size=8", "data.max_len=32", "data.min_changed_tokens=0",
        "data.val_percent=30", "train.threads=1", "model.dim=32", "model.heads=2", "train.eval_every=2",
        "train.save_every=2", "model.projector.hidden=32", "model.action.hidden=32", "optim.warmup_steps=0",
        "optim.lr=0.003", "model.dropout=0.0"]


def _sets(items):
    return [arg for item in items for arg in ("--set", item)]


def varied_rows(n=80, seed=0):
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "count", "total", "name", "value", "items", "result", "path"]
    rows = []
    for i in range(n):
        a, b, c = rng.sample(words, 3)
        body = "\n".join(f"{rng.choice(words)}_{j} = {rng.randint(0, 99)}" for j in range(rng.randint(1, 5)))
        after = body + f"\n{a} = {b} + {rng.randint(1, 9)}\n" + ("def f(x):\n    return x * 2\n" if i % 3 == 0 else "")
        rows.append({"old_file": f"{c}{i}.py", "new_file": f"{c}{i}.py", "old_contents": body + "\n",
                     "new_contents": after})
    return rows


@pytest.fixture
def data(tmp_path):
    return write_commitpack_jsonl(tmp_path / "rows.jsonl", varied_rows())


def sweep_args(data, out, *extra):
    return ["sweep", RECIPE, "--grid", "loss.aux.weight=0.1,0.5", "--seeds", "42,43", "--steps", "5",
            "--audit-at", "last,best", "--data", f"jsonl:{data}", "--out", str(out), "--val-size", "20",
            "--no-live", *_sets(TINY), *extra]


def one_line_error(result, *needles):
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# ---------------------------------------------------------------------------------------------
# plans
# ---------------------------------------------------------------------------------------------


def test_grid_values_split_outside_brackets_and_use_the_set_grammar():
    from wmkit.sweep.plan import parse_grid_option, split_values

    assert split_values('1,[1,2],"a,b",x') == ["1", "[1,2]", '"a,b"', "x"]
    assert parse_grid_option("loss.aux.loops=[1],[1,2]") == ("loss.aux.loops", [[1], [1, 2]])
    assert parse_grid_option("loss.aux.weight=0.1,1") == ("loss.aux.weight", [0.1, 1])
    assert parse_grid_option("loss.aux.type=pred,ntxent") == ("loss.aux.type", ["pred", "ntxent"])


def test_sweep_file_gives_the_grid_and_flags_win(tmp_path, wmkit_host):
    from wmkit.sweep.plan import build_plan, validate

    path = tmp_path / "s.toml"
    path.write_text('[sweep]\nrecipe = "loops3_auxpred_vicreg"\nseeds = [1, 2]\nsteps = 7\naudit_at = [3, "best"]\n'
                    'set = ["model.dim=32", "model.heads=2"]\n\n[sweep.grid]\n"loss.aux.weight" = [0.1, 0.3]\n'
                    '"model.encoder.loops" = [2, 3]\n')
    plan = build_plan(str(path), grid_options=["model.encoder.loops=4"], seeds="5,6,7")
    assert plan.grid == [("loss.aux.weight", [0.1, 0.3]), ("model.encoder.loops", [4])]
    runs = validate(plan, wmkit_host)
    assert len(runs) == 2 * 1 * 3 and {r["seed"] for r in runs} == {5, 6, 7}
    assert {r["steps"] for r in runs} == {7}
    assert runs[0]["recipe"]["model"]["encoder"]["loops"] == 4 and runs[0]["recipe"]["model"]["dim"] == 32
    assert len({r["id"] for r in runs}) == 6


def test_ablation_log_takes_the_copy_and_linear_edit_baselines_when_the_audit_has_them():
    from wmkit.sweep.report import ablation_table_rows, baseline_values

    audit = {"copy_knn_at_k": {"1": 0.1, "5": 0.3, "10": 0.4, "50": 0.9}, "linear_edit_knn_at_k": {"1": 0.2, "5": 0.5},
             "beats_copy": {"rate": 0.6, "wins": 6, "n": 10}, "linear_edit": {"beats_copy": {"rate": 0.4}}}
    assert baseline_values(audit) == {"copy_knn_at_1": 0.1, "copy_knn_at_5": 0.3, "copy_knn_at_10": 0.4,
                                      "linear_edit_knn_at_1": 0.2, "linear_edit_knn_at_5": 0.5,
                                      "beats_copy_rate": 0.6, "linear_edit_beats_copy_rate": 0.4}
    assert baseline_values({"knn_at_5": 0.2}) == {}
    header, body = ablation_table_rows([{"run": "r", **baseline_values(audit)}])
    assert "copy_knn_at_5" in header and body[0][header.index("copy_knn_at_5")] == "0.3000"
    header, _ = ablation_table_rows([{"run": "r"}])
    assert not any("copy_knn" in h for h in header)


@pytest.mark.parametrize("case", ["unknown_key", "wrong_type", "empty_grid", "duplicate_seeds", "nothing",
                                  "audit_step", "no_ray", "dead_address"])
def test_bad_sweep_input_is_one_line_and_starts_nothing(case, wmkit_cli, tmp_path, data, monkeypatch):
    out = tmp_path / "sweep"
    base = ["sweep", RECIPE, "--out", str(out), "--data", f"jsonl:{data}", *_sets(TINY)]
    if case == "unknown_key":
        result = wmkit_cli(*base, "--grid", "loss.aux.wieght=0.1,0.3")
        needles = ("--grid loss.aux.wieght", "did you mean loss.aux.weight")
    elif case == "wrong_type":
        result = wmkit_cli(*base, "--grid", "model.encoder.loops=2,three")
        needles = ("--grid model.encoder.loops=three", "expected")
    elif case == "empty_grid":
        result = wmkit_cli(*base, "--grid", "loss.aux.weight=")
        needles = ("--grid loss.aux.weight", "empty value list")
    elif case == "duplicate_seeds":
        result = wmkit_cli(*base, "--grid", "loss.aux.weight=0.1,0.3", "--seeds", "42,43,42")
        needles = ("--seeds", "42 listed more than once")
    elif case == "nothing":
        result = wmkit_cli(*base)
        needles = ("nothing to sweep",)
    elif case == "audit_step":
        result = wmkit_cli(*base, "--grid", "loss.aux.weight=0.1,0.3", "--steps", "5", "--audit-at", "9")
        needles = ("--audit-at 9", "outside 1..5")
    elif case == "no_ray":
        monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
        result = wmkit_cli(*base, "--grid", "loss.aux.weight=0.1,0.3", "--executor", "ray")
        needles = ("--executor ray needs Ray", "pip install 'wmkit[ray]'")
    else:
        pytest.importorskip("ray", reason="the address check runs after Ray is found; Ray is not installed")
        result = wmkit_cli(*base, "--grid", "loss.aux.weight=0.1,0.3", "--executor", "ray", "--address",
                           "127.0.0.1:9")
        needles = ("--address 127.0.0.1:9", "no Ray cluster answered within 10 s")
    one_line_error(result, *needles)
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# a killed, resumed and reported sweep
# ---------------------------------------------------------------------------------------------


def _audits(sweep_dir: Path) -> list[Path]:
    return sorted(sweep_dir.glob("*/audits/*.json"))


def _check_report_against_audits(sweep_dir: Path, report: dict):
    state = json.loads((sweep_dir / "sweep.json").read_text())
    rows = report["ablation_log"]
    assert len(rows) == 4 * 2  # 2 points x 2 seeds x (last, best)
    for row in rows:
        info = state["runs"][row["run"]]
        audit = json.loads((sweep_dir / info["dir"] / "audits" / f"{row['checkpoint']}.json").read_text())
        assert row["seed"] == info["seed"] and row["steps"] == audit["step"]
        for key in ("cos", "delta_cos", "copy_cos", "lift", "knn_at_1", "knn_at_5", "knn_at_10", "erank_online",
                    "erank_target", "erank_pred", "cross_off"):
            assert row[key] == audit[key], key
        assert row["train_val_gap"] == audit["train_gap"]["difference"]["knn_at_5"]
    assert {r["checkpoint"] for r in rows} == {"step-5", "best"}
    matrix = report["seed_matrix"]
    assert len(matrix) == 2 * 2  # points x checkpoints
    for entry in matrix:
        members = sorted((r for r in rows if r["point_index"] == entry["point_index"]
                          and r["checkpoint"] == entry["checkpoint"]), key=lambda r: r["seed"])
        assert entry["seeds"] == [42, 43]
        for k in (1, 5, 10):
            values = np.array([r[f"knn_at_{k}"] for r in members])
            cell = entry[f"knn_at_{k}"]
            assert cell["values"] == list(values)
            assert cell["mean"] == pytest.approx(values.mean())
            assert cell["sd"] == pytest.approx(values.std(ddof=1))
            if values.min() > 0:
                assert cell["spread"] == pytest.approx(values.max() / values.min())
        spread = entry["knn_at_5"]["spread"]
        assert entry["flagged"] == (spread is None and entry["knn_at_5"]["max"] > 0 or
                                    spread is not None and spread > 2.0)


def test_sweep_killed_resumed_and_reported(tmp_path, data):
    out = tmp_path / "sweep"
    env = dict(os.environ, WMKIT_CACHE_DIR=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "wmkit", *sweep_args(data, out, "--jobs", "2")]
    first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.time() + 400
    while time.time() < deadline and not _audits(out) and first.poll() is None:
        time.sleep(0.1)
    for pid in [first.pid, *descendants(first.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    first.wait()
    state = json.loads((out / "sweep.json").read_text())
    assert [v["state"] for v in state["runs"].values()].count("done") < 4, "the sweep must be killed mid-way"
    kept = {p: p.stat().st_mtime_ns for p in _audits(out)}

    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    state = json.loads((out / "sweep.json").read_text())
    assert all(v["state"] == "done" for v in state["runs"].values())
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items()), "finished audits are not redone"
    for info in state["runs"].values():
        lines = (out / info["dir"] / "metrics.jsonl").read_text().splitlines()
        steps = [json.loads(line)["step"] for line in lines if "event" not in json.loads(line)]
        assert steps == [1, 2, 3, 4, 5], info["dir"]
    report = json.loads((out / "report" / "report.json").read_text())
    _check_report_against_audits(out, report)
    html = (out / "report" / "report.html").read_text()
    assert "KNN@5 vs step across seeds" in html and html.count("<svg") == 2 + 4
    assert "Cross-seed matrix" in (out / "report" / "report.md").read_text()

    # the report command reads the same numbers; a changed plan is refused and nothing is touched
    shown = subprocess.run([sys.executable, "-m", "wmkit", "sweep", "report", str(out), "--format", "json"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["ablation_log"] == report["ablation_log"]
    before = (out / "sweep.json").read_bytes()
    changed = [a if a != "42,43" else "42,44" for a in cmd]
    refused = subprocess.run(changed, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "plan differs" in errors[0] and "seeds" in errors[0], refused.stderr
    assert (out / "sweep.json").read_bytes() == before

    # wmkit compare of the sweep's runs: JSON records grouped by seed, numbers of the saved audits
    dirs = [out / info["dir"] for info in state["runs"].values()]
    compared = subprocess.run([sys.executable, "-m", "wmkit", "compare", *map(str, dirs), "--val-size", "20",
                               "--json", "-"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert compared.returncode == 0, compared.stderr[-3000:]
    records = {r["run"]: r for r in json.loads(compared.stdout)}
    for run_id, info in state["runs"].items():
        best = json.loads((out / info["dir"] / "audits" / "best.json").read_text())
        assert records[run_id]["seed"] == info["seed"] and records[run_id]["KNN@5"] == best["knn_at_5"]
    groups = {}
    for run_id, info in state["runs"].items():
        groups.setdefault(info["point_index"], set()).add(records[run_id]["seed_group"])
    assert all(len(g) == 1 for g in groups.values()) and len({min(g) for g in groups.values()}) == 2


def test_ray_executor_runs_the_tiny_sweep(tmp_path, data):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'wmkit[ray]'); CI installs it")
    out = tmp_path / "sweep"
    env = dict(os.environ, WMKIT_CACHE_DIR=str(tmp_path / "cache"), OMP_NUM_THREADS="1",
               RAY_USAGE_STATS_ENABLED="0")
    done = subprocess.run([sys.executable, "-m", "wmkit", *sweep_args(data, out, "--executor", "ray")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads((out / "sweep.json").read_text())
    assert all(v["state"] == "done" for v in state["runs"].values())
    _check_report_against_audits(out, json.loads((out / "report" / "report.json").read_text()))

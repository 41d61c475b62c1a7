"""Issue 12: nothing lost, no plugin hijacks another, every bad input one line.

Each test names the numbered case (or traceback case) of the issue it proves; docs/reliability.md
maps every promise to these tests.
"""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import wmkit
from wmkit.testing import write_commitpack_jsonl

FIXTURES = Path(__file__).parent / "fixtures" / "wmkit_toy"
TINY = ["--set", "train.threads=1", "--set", "train.steps=4", "--set", "train.save_every=2",
        "--set", "train.eval_every=2"]


def strict_json(line: str):
    """json.loads that refuses the bare NaN / Infinity Python would otherwise accept."""
    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    return json.loads(line, parse_constant=refuse)


def one_line_error(result, *needles):
    assert result.exit_code not in (0, None), result.output
    out = result.output.strip()
    assert "Traceback" not in out, out
    lines = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, out
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def snapshot(path: Path) -> dict:
    return {p.relative_to(path): p.read_bytes() for p in Path(path).rglob("*") if p.is_file()}


@pytest.fixture
def toy(register_plugin, monkeypatch):
    """The toy domain registered in-process (visible to ``wmkit_cli``, issue 12 fixture fix)."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    import wmkit_toy.plugin

    record = register_plugin(wmkit_toy.plugin, "toy", distribution="wmkit-toy", version="0.1.0")
    assert record.status == "ok", record.error
    return record


@pytest.fixture
def cli(wmkit_cli, toy):
    def run(*args, env=None):
        return wmkit_cli(*args, env=env)

    return run


def train_toy(cli, run: Path, *extra, env=None):
    return cli("train", "--domain", "toy", "--out", str(run), "--no-live", *TINY, *extra, env=env)


def losses(run: Path) -> dict:
    rows = [strict_json(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "event" not in r]
    assert len(steps) == len(set(steps)), f"steps logged twice: {steps}"
    return {r["step"]: r["loss"] for r in rows if "event" not in r}


# -- fixtures (issue: "Test fixtures") ---------------------------------------------------------------
def test_commitpack_jsonl_accepts_rows_with_a_commit_key(commitpack_jsonl):
    path = commitpack_jsonl([{"commit": "abc", "old_contents": "a", "new_contents": "b"}, {"old_contents": "c"}])
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0]["commit"] == "abc" and rows[1]["commit"] == f"{1:040x}"


def test_register_plugin_is_visible_to_wmkit_cli(cli):
    rows = json.loads(cli("plugins", "--json").output)
    assert any(r["name"] == "toy" and r["status"] == "ok" for r in rows)


# -- 1, 2: --force ------------------------------------------------------------------------------------
def test_1_force_with_a_bad_new_run_keeps_the_old_one(cli, tmp_path):
    import torch

    run = tmp_path / "run"
    assert train_toy(cli, run).exit_code == 0
    before = snapshot(run)
    bad_device = "cuda:7" if torch.cuda.is_available() else "cuda"
    one_line_error(train_toy(cli, run, "--force", "--set", f"train.device={bad_device}"), "train.device")
    one_line_error(train_toy(cli, run, "--force", "--data", f"jsonl:{tmp_path / 'gone.jsonl'}"), "gone.jsonl")
    assert snapshot(run) == before
    # a valid --force replaces it: written beside, swapped in, nothing left over
    assert train_toy(cli, run, "--force", "--set", "optim.lr=0.001").exit_code == 0
    assert json.loads((run / "config.json").read_text())["recipe"]["optim"]["lr"] == 0.001
    assert (run / ".wmkit-run").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith((".run.new-", ".run.old-"))] == []


def test_2_force_refuses_a_folder_that_is_not_a_run(cli, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("my notes\n")
    one_line_error(train_toy(cli, notes, "--force"), "not a wmkit run", str(notes))
    assert snapshot(notes) == {Path("todo.txt"): b"my notes\n"}


def test_interrupted_swap_is_finished_on_the_next_start(tmp_path):
    from wmkit.rundir import recover

    run = tmp_path / "run"
    old = tmp_path / ".run.old-1234abcd"
    old.mkdir()
    (old / "config.json").write_text("{}")
    (tmp_path / ".run.new-feedbeef").mkdir()
    recover(run)  # killed between the two renames: the old run comes back, the staging dir goes
    assert (run / "config.json").exists() and not old.exists()
    assert not (tmp_path / ".run.new-feedbeef").exists()


def test_staged_run_is_swapped_in_and_the_old_one_removed(tmp_path):
    from wmkit.rundir import stage

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("old")
    staged = stage(run)
    (staged.path / "config.json").write_text("new")
    assert staged.commit() == run
    assert (run / "config.json").read_text() == "new" and (run / ".wmkit-run").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# -- 3: divergence -----------------------------------------------------------------------------------
def _poison_weights_at(monkeypatch, call: int):
    """Make the optimizer write NaN into the weights at its ``call``-th step (the loss stays finite)."""
    import torch

    real_step = torch.optim.AdamW.step
    calls = {"n": 0}

    def step(self, *a, **k):
        out = real_step(self, *a, **k)
        calls["n"] += 1
        if calls["n"] == call:
            with torch.no_grad():
                for group in self.param_groups:
                    for p in group["params"]:
                        p.fill_(float("nan"))
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", step)


def test_3_divergence_keeps_only_a_finite_checkpoint_and_says_so(cli, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    run = tmp_path / "run"
    _poison_weights_at(monkeypatch, 4)  # after the loss of step 4 was finite; step-4 would hold NaN
    line = one_line_error(train_toy(cli, run), "diverged at step 4", "step-2 (finite weights, finite loss) is kept")
    index = json.loads((run / "checkpoints" / "index.json").read_text())
    assert index["latest"] == "step-2" and not (run / "checkpoints" / "step-4").exists()
    weights = load_file(str(run / "checkpoints" / "step-2" / "model.safetensors"))
    assert all(bool(t.isfinite().all()) for t in weights.values() if t.is_floating_point())
    rows = [strict_json(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["kind"] == "nan" and "step-2" in rows[-1]["message"], line
    result = cli("audit", str(run), "--val-size", "16")
    assert result.exit_code == 0, result.output  # the kept checkpoint audits


def test_3_divergence_before_any_checkpoint_claims_none(cli, tmp_path, monkeypatch):
    _poison_weights_at(monkeypatch, 1)
    one_line_error(train_toy(cli, tmp_path / "run"), "diverged at step 2", "no checkpoint was written")


def test_3_infinite_lr_is_refused_naming_the_key(cli, tmp_path):
    one_line_error(train_toy(cli, tmp_path / "run", "--set", "optim.lr=inf"), "optim.lr", "finite")
    assert not (tmp_path / "run").exists()


def test_3_audit_of_a_nan_checkpoint_is_one_line(cli, tmp_path):
    import hashlib

    import torch
    from safetensors.torch import load_file, save_file

    run = tmp_path / "run"
    assert train_toy(cli, run).exit_code == 0
    ckpt = run / "checkpoints" / "step-4"
    weights = load_file(str(ckpt / "model.safetensors"))
    weights = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in weights.items()}
    save_file(weights, str(ckpt / "model.safetensors"))  # a checkpoint an older wmkit kept after divergence
    meta = json.loads((ckpt / "checkpoint.json").read_text())
    meta["files"]["model.safetensors"] = hashlib.sha256((ckpt / "model.safetensors").read_bytes()).hexdigest()
    (ckpt / "checkpoint.json").write_text(json.dumps(meta))
    one_line_error(cli("audit", str(ckpt)), "NaN or inf", "model.safetensors")


def test_3_non_finite_numbers_are_written_as_null(tmp_path):
    from wmkit import jsonsafe
    from wmkit.checkpoint import write_json_atomic

    assert jsonsafe.dumps({"loss": float("nan"), "xs": [1.0, float("inf")], "n": 3}) == \
        '{"loss": null, "xs": [1.0, null], "n": 3}'
    write_json_atomic(tmp_path / "a.json", {"v": float("-inf")})
    assert strict_json((tmp_path / "a.json").read_text()) == {"v": None}


# -- 4: locking --------------------------------------------------------------------------------------
HOLD_LOCK = """
import sys, time
from wmkit.rundir import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_4_second_writer_and_resume_of_a_live_run_are_refused_naming_the_pid(cli, tmp_path):
    run = tmp_path / "run"
    assert train_toy(cli, run).exit_code == 0
    before = snapshot(run)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        one_line_error(train_toy(cli, run, "--force"), "in use", f"PID {holder.pid}")
        one_line_error(cli("train", "--resume", str(run), "--no-live"), "in use", f"PID {holder.pid}")
        assert snapshot(run) == before
    finally:
        holder.kill()
        holder.wait()
    # a holder that died (SIGKILL) leaves no lock behind
    assert cli("train", "--resume", str(run), "--no-live").exit_code == 0


def test_4_two_trainings_started_together_one_is_refused(tmp_path):
    script = ("import sys; sys.path.insert(0, %r)\n" % str(FIXTURES)) + """
import wmkit_toy.plugin
from wmkit.errors import RunError
from wmkit.plugins import get_host
from wmkit.recipe import load_recipe
from wmkit.train import train
host = get_host()
host.register_plugin(wmkit_toy.plugin, "toy")
recipe = load_recipe(None, domain="toy", overrides=["train.threads=1", "train.steps=60"], host=host, environ={})
try:
    train(recipe, out=sys.argv[1], host=host, live=False)
except RunError as exc:
    print("refused:", exc)
    sys.exit(3)
"""
    env = dict(os.environ, WMKIT_CACHE_DIR=str(tmp_path / "cache"))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "run")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(2)]
    outs = [(p.wait(timeout=600), p.stdout.read()) for p in procs]
    codes = sorted(code for code, _ in outs)
    assert codes == [0, 3], outs
    assert any("in use" in out and "PID" in out for _, out in outs)
    assert sorted(losses(tmp_path / "run")) == list(range(1, 61))  # every step logged once


# -- 5 and leftovers: crash hygiene -----------------------------------------------------------------
def test_5_run_killed_before_its_first_checkpoint_restarts_with_metrics_truncated(cli, tmp_path, monkeypatch):
    import wmkit.train as train_module

    straight = tmp_path / "straight"
    assert train_toy(cli, straight, "--set", "train.save_every=100").exit_code == 0
    real_probe = train_module.probe_validation

    def killed(*a, **k):
        raise KeyboardInterrupt  # stands in for a kill at step 2, before any checkpoint

    monkeypatch.setattr(train_module, "probe_validation", killed)
    run = tmp_path / "run"
    assert train_toy(cli, run, "--set", "train.save_every=100").exit_code == 130
    assert not (run / "checkpoints").exists() and (run / "metrics.jsonl").read_text()
    monkeypatch.setattr(train_module, "probe_validation", real_probe)
    assert cli("train", "--resume", str(run), "--no-live").exit_code == 0
    assert losses(run) == losses(straight)


def test_partial_checkpoints_and_cache_temporaries_are_cleaned_on_the_next_start(cli, tmp_path):
    run = tmp_path / "run"
    assert train_toy(cli, run, "--early-stop", "2").exit_code == 0
    partial = run / "checkpoints" / ".step-3.x1y2z3"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"\0" * 1000)
    cache = {"WMKIT_CACHE_DIR": str(tmp_path / "cache")}
    root = tmp_path / "cache" / "prepared" / "toy"
    dead = root / ".tmp-0123456789abcdef-999999999-deadbeef"  # no such PID
    live = root / f".tmp-0123456789abcdef-{os.getpid()}-cafe0000"
    dead.mkdir(parents=True)
    live.mkdir()
    # a new setting: the cache must be built, and the stale temporary swept first
    assert cli("train", "--resume", str(run), "--no-live").exit_code == 0
    assert not partial.exists()
    assert train_toy(cli, tmp_path / "other", env=cache).exit_code == 0
    assert not dead.exists() and live.exists()
    live.rmdir()


# -- 6, 7, 8: plugin isolation -----------------------------------------------------------------------
class FakeDist:
    def __init__(self, name, version):
        self.metadata = {"Name": name}
        self.version = version


class FakeEntryPoint:
    """What PluginHost reads from an entry point: name, dist, load()."""

    def __init__(self, name, dist, load):
        self.name, self.dist, self._load = name, dist, load

    def load(self):
        return self._load()


def impostor_module(name):
    import types

    module = types.ModuleType(f"impostor_{name}")

    @wmkit.hookimpl
    def wmkit_register_domains(register):
        register(name, "impostor:Nothing", description="not the real one")

    module.wmkit_register_domains = wmkit_register_domains
    return module


@pytest.mark.parametrize("entry_name", ["aaa_first", "zzz_last"])
def test_6_builtin_wins_over_a_third_party_of_the_same_name_whatever_the_order(entry_name):
    from importlib import metadata

    from wmkit.plugins import PluginHost

    builtins = list(metadata.entry_points(group="wmkit"))
    impostor = FakeEntryPoint(entry_name, FakeDist("evil-kernels", "6.6"), lambda: impostor_module("kernel"))
    for order in ([impostor, *builtins], [*builtins, impostor]):
        host = PluginHost(entry_points=order)
        assert host.get("domain", "kernel").distribution == "wmkit"
        record = host.records[entry_name]
        assert record.status == "error"
        assert "evil-kernels" in record.error and "wmkit" in record.error and "built-in wins" in record.error
        assert all(r.status == "ok" for n, r in host.records.items() if n != entry_name)


def test_6_installed_impostor_cannot_take_over_the_kernel_domain(wmkit_cli, tmp_path, monkeypatch):
    from test_plugins import make_distribution

    plugin = ("import wmkit\n@wmkit.hookimpl\ndef wmkit_register_domains(register):\n"
              "    register('kernel', 'wmkit_impostor:Nothing', description='impostor')\n")
    # entry-point name "aaa" sorts before the built-in "kernel"
    make_distribution(tmp_path, "evil-kernels", "6.6", {"aaa": "wmkit_impostor"}, {"wmkit_impostor.py": plugin})
    monkeypatch.syspath_prepend(str(tmp_path))
    rows = json.loads(wmkit_cli("plugins", "--json").output)
    kernel = [r for r in rows if r["kind"] == "domain" and r["name"] == "kernel"]
    assert [(r["distribution"], r["status"]) for r in kernel] == [("wmkit", "ok")]
    aaa = [r for r in rows if r["plugin"] == "aaa"][0]
    assert aaa["status"] == "error" and "evil-kernels" in aaa["error"] and "built-in wins" in aaa["error"]
    result = wmkit_cli("model", "kernel_default", "--domain", "kernel")
    assert result.exit_code == 0 and "impostor" not in result.output, result.output


def test_6_builtin_registered_after_a_third_party_still_wins():
    from wmkit.plugins import PluginHost

    host = PluginHost(load=False)
    host.register_plugin(impostor_module("code"), "aaa", distribution="evil", version="1")
    import wmkit_code.plugin

    host.register_plugin(wmkit_code.plugin, "code", distribution="wmkit", version=wmkit.__version__)
    assert host.get("domain", "code").plugin == "code"
    assert host.records["aaa"].status == "error" and "evil" in host.records["aaa"].error


def test_7_sys_exit_at_plugin_import_is_caught_and_reported(wmkit_cli, tmp_path, monkeypatch):
    from test_plugins import make_distribution

    make_distribution(tmp_path, "wmkit-quitter", "0.2", {"quitter": "wmkit_quitter"},
                      {"wmkit_quitter.py": "import sys\nsys.exit(0)\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    result = wmkit_cli("plugins", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.output[result.output.index("["):])
    quitter = [r for r in rows if r["plugin"] == "quitter"]
    assert quitter and quitter[0]["status"] == "error" and "SystemExit" in quitter[0]["error"]
    result = wmkit_cli("recipe", "show", "quickstart")
    assert result.exit_code == 0 and "[meta]" in result.output
    # asking for the domain of a plugin that failed names the failure
    one_line_error(wmkit_cli("recipe", "show", "--domain", "quitter"), "quitter", "SystemExit")


def _domain_classes():
    from wmkit.domain import Domain, Vocabulary

    class Exploding(Domain):
        name = "exploding"
        vocab = property(lambda self: Vocabulary(size=8, pad_id=0, version="x"))
        action_names = property(lambda self: ["a"])

        def __init__(self, options=None):
            raise RuntimeError("cannot find my tokenizer files")

        def transition(self, row):
            raise NotImplementedError

    class Gappy(Domain):  # forgets transition()
        name = "gappy"
        vocab = property(lambda self: Vocabulary(size=8, pad_id=0, version="x"))
        action_names = property(lambda self: ["a"])

    return Exploding, Gappy


def _register_domains(register_plugin):
    import types

    exploding, gappy = _domain_classes()
    module = types.ModuleType("wmkit_oddities")

    @wmkit.hookimpl
    def wmkit_register_domains(register):
        register("exploding", exploding)
        register("gappy", gappy)

    module.wmkit_register_domains = wmkit_register_domains
    return register_plugin(module, "oddities", distribution="wmkit-oddities", version="0.3")


def test_8_domain_constructor_error_is_one_line_naming_plugin_class_and_error(wmkit_cli, register_plugin, tmp_path):
    _register_domains(register_plugin)
    for command in (["model", "recipes/quickstart.toml", "--domain", "exploding"],
                    ["train", "recipes/quickstart.toml", "--domain", "exploding", "--out", str(tmp_path / "r")]):
        one_line_error(wmkit_cli(*command), "oddities", "Exploding", "cannot find my tokenizer files")
    result = wmkit_cli("model", "recipes/quickstart.toml", "--domain", "exploding",
                       env={"WMKIT_TRACE_PLUGINS": "1"})
    assert "Traceback" in result.output and "cannot find my tokenizer files" in result.output


def test_8_component_constructor_error_is_one_line(wmkit_cli, register_plugin):
    import types

    from wmkit.components import Regularizer

    class Fragile(Regularizer):
        def __init__(self, *, dim, options):
            raise ValueError(f"dim {dim} is not a power of two")

    module = types.ModuleType("wmkit_fragile")

    @wmkit.hookimpl
    def wmkit_register_regularizers(register):
        register("fragile", Fragile)

    module.wmkit_register_regularizers = wmkit_register_regularizers
    assert register_plugin(module, "fragile", distribution="wmkit-fragile", version="1").status == "ok"
    one_line_error(wmkit_cli("model", "quickstart", "--set", "regularizer.name=fragile"),
                   "fragile", "Fragile", "not a power of two")


def test_8_abstract_gap_found_at_registration_and_shown_by_plugins(wmkit_cli, register_plugin, tmp_path):
    record = _register_domains(register_plugin)
    assert record.status == "ok"
    rows = json.loads(wmkit_cli("plugins", "--json").output)
    gappy = [r for r in rows if r["name"] == "gappy"][0]
    assert gappy["status"] == "error" and "transition" in gappy["error"]
    one_line_error(wmkit_cli("model", "recipes/quickstart.toml", "--domain", "gappy"), "gappy", "transition")
    data = write_commitpack_jsonl(tmp_path / "d.jsonl", [{"old_contents": "a", "new_contents": "b"}])
    one_line_error(wmkit_cli("train", "recipes/quickstart.toml", "--domain", "gappy", "--data", f"jsonl:{data}",
                             "--out", str(tmp_path / "r")), "transition")


# -- traceback cases: each one line ------------------------------------------------------------------
@pytest.mark.parametrize("body, needle", [
    ('[meta]\nextends = 5\n', "meta.extends"),
    ('[meta]\nextends = ["quickstart"]\n', "meta.extends"),
])
def test_extends_of_the_wrong_type_is_one_line(wmkit_cli, tmp_path, body, needle):
    path = tmp_path / "r.toml"
    path.write_text(body)
    one_line_error(wmkit_cli("recipe", "show", str(path)), needle, str(path))


@pytest.mark.parametrize("payload", [b"\x00\x01\xff\xfe binary", "name = 'caf\u00e9'".encode("latin-1")])
def test_non_utf8_recipe_is_one_line(wmkit_cli, tmp_path, payload):
    path = tmp_path / "bin.toml"
    path.write_bytes(payload)
    one_line_error(wmkit_cli("recipe", "show", str(path)), "UTF-8", str(path))


@pytest.mark.parametrize("override, needle", [
    ("meta.seed=99999999999999999999", "meta.seed"),
    ("meta.seed=-1", "meta.seed"),
    ("train.device=tpu", "train.device"),
    ("optim.lr=nan", "optim.lr"),
    ("model.dropout=nan", "model.dropout"),
    ("model.dim=1e9", "model.dim"),
    ("data.max_len=1e8", "data.max_len"),
    ("loss.aux.name=nope", "loss.aux.name"),
    ("loss.aux.type=nope", "loss.aux.name"),  # the old name of the key: the message names the new one
])
def test_bad_overrides_are_one_line_naming_the_key(wmkit_cli, override, needle):
    result = wmkit_cli("recipe", "show", "quickstart", "--set", override)
    one_line_error(result, needle)
    assert result.exit_code == 2  # bad recipe values all exit 2, unknown aux loss included


def test_memory_estimate_is_printed_for_sizes_that_cannot_fit(wmkit_cli):
    from wmkit.recipe import _physical_memory

    if (_physical_memory() or 0) > 400 * 2**30:
        pytest.skip("this machine could hold the model")
    result = wmkit_cli("recipe", "show", "quickstart", "--set", "model.dim=32768", "--set", "model.heads=4")
    one_line_error(result, "GiB", "model.dim=32768")


@pytest.mark.parametrize("var, value", [("WM_VAL_FRAC", "inf"), ("WM_VAL_FRAC", "nan"), ("WM_LR", "nan"),
                                        ("WM_SEED", "99999999999999999999")])
def test_bad_environment_values_are_one_line_naming_the_variable(wmkit_cli, var, value):
    one_line_error(wmkit_cli("recipe", "show", "quickstart", env={var: value}), var)


@pytest.mark.parametrize("row, needle", [
    ({"old_contents": 5, "new_contents": "x = 1\n"}, "old_contents is a int"),
    ({"old_contents": ["a"], "new_contents": "x = 1\n"}, "old_contents is a list"),
    ({"old_contents": "x = 1\n", "new_contents": {"a": 1}}, "new_contents is a dict"),
])
def test_contents_of_the_wrong_type_are_one_line(wmkit_cli, tmp_path, row, needle):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"commit": "c1", **row}) + "\n")
    one_line_error(wmkit_cli("train", "quickstart", "--data", f"jsonl:{path}", "--out", str(tmp_path / "r")),
                   needle, "rows.jsonl")
    assert not (tmp_path / "r").exists()


def test_unwritable_cache_and_out_are_one_line(cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    one_line_error(train_toy(cli, tmp_path / "run", env={"WMKIT_CACHE_DIR": str(blocker / "cache")}),
                   "cache", "WMKIT_CACHE_DIR")
    one_line_error(train_toy(cli, blocker / "run"), str(blocker / "run"))
    assert blocker.read_text() == "not a folder"


def test_full_disk_while_training_is_one_line_and_keeps_what_was_written(cli, tmp_path, monkeypatch):
    import safetensors.torch

    real_save = safetensors.torch.save_file
    calls = {"n": 0}

    def save_file(tensors, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] > 2:  # the first checkpoint (two files) fits, the next does not
            raise OSError(errno.ENOSPC, "No space left on device", filename)
        return real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    run = tmp_path / "run"
    one_line_error(train_toy(cli, run), "No space left on device", str(run))
    assert json.loads((run / "checkpoints" / "index.json").read_text())["latest"] == "step-2"
    assert [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")] == []
    monkeypatch.setattr(safetensors.torch, "save_file", real_save)
    assert cli("train", "--resume", str(run), "--no-live").exit_code == 0


def test_full_disk_in_the_cache_is_one_line(cli, tmp_path, monkeypatch):
    import numpy as np

    real_save = np.save

    def save(file, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(file))

    monkeypatch.setattr(np, "save", save)
    one_line_error(train_toy(cli, tmp_path / "run", env={"WMKIT_CACHE_DIR": str(tmp_path / "cache")}),
                   "cache", "No space left")
    monkeypatch.setattr(np, "save", real_save)
    assert not (tmp_path / "run").exists()


@pytest.fixture
def toy_run(cli, tmp_path):
    run = tmp_path / "run"
    assert train_toy(cli, run).exit_code == 0
    return run


def test_resume_with_a_cut_config_is_one_line(cli, toy_run):
    config = toy_run / "config.json"
    config.write_text(config.read_text()[:100])
    one_line_error(cli("train", "--resume", str(toy_run), "--no-live"), "config.json")
    config.write_text("[1]")
    one_line_error(cli("train", "--resume", str(toy_run), "--no-live"), "config.json")


@pytest.mark.parametrize("body", ["[1]", '{"step": 4}'])
def test_damaged_checkpoint_json_is_one_line(cli, toy_run, body):
    for meta in (toy_run / "checkpoints").glob("step-*/checkpoint.json"):  # the best (audit) and the latest (resume)
        meta.write_text(body)
    one_line_error(cli("audit", str(toy_run)), "checkpoint.json")
    one_line_error(cli("train", "--resume", str(toy_run), "--no-live"), "checkpoint.json")


def test_empty_trainer_state_is_one_line(cli, toy_run):
    import hashlib

    ckpt = toy_run / "checkpoints" / "step-4"
    (ckpt / "trainer_state.json").write_text("{}")
    meta = json.loads((ckpt / "checkpoint.json").read_text())
    meta["files"]["trainer_state.json"] = hashlib.sha256(b"{}").hexdigest()  # checksums agree: only the shape is wrong
    (ckpt / "checkpoint.json").write_text(json.dumps(meta))
    one_line_error(cli("train", "--resume", str(toy_run), "--no-live"), "trainer_state.json", "--checkpoint")


@pytest.mark.parametrize("flag", ["--json", "--html"])
def test_audit_output_that_cannot_be_written_is_refused_before_the_audit(cli, toy_run, flag, monkeypatch, tmp_path):
    import wmkit.audit

    def never(*a, **k):
        raise AssertionError("the audit must not run")

    monkeypatch.setattr(wmkit.audit, "run_audit", never)
    one_line_error(cli("audit", str(toy_run), flag, str(tmp_path)), "is a directory")
    one_line_error(cli("audit", str(toy_run), flag, "/proc/wmkit-report"), "/proc/wmkit-report")


def test_recipe_keys_prints_every_recipe(wmkit_cli):
    from wmkit.recipe import shipped_recipes

    for name in sorted(shipped_recipes()):
        result = wmkit_cli("recipe", "keys", name)
        assert result.exit_code == 0, (name, result.output[-500:])
        assert "data.source" in result.output and "CONFIG" in result.output


# -- messages that misled ----------------------------------------------------------------------------
def test_all_validation_split_says_so(wmkit_cli, tmp_path):
    rows = [{"old_contents": f"x = {i}\n", "new_contents": f"x = {i}\ny = x * {i} + 1\n", "split": "val"}
            for i in range(30)]
    data = write_commitpack_jsonl(tmp_path / "v.jsonl", rows)
    one_line_error(wmkit_cli("train", "quickstart", "--data", f"jsonl:{data}", "--out", str(tmp_path / "r"),
                             "--set", "data.min_changed_tokens=0"), "validation rows", "split column")


def test_resume_differences_are_against_the_runs_own_recipe(cli, toy_run):
    line = one_line_error(cli("train", "--resume", str(toy_run), "--set", "optim.lr=0.001", "--no-live"),
                          "optim.lr")
    assert line.split("differs from the run's in ")[1].split(";")[0] == "optim.lr"


def test_environment_on_a_bare_resume_is_refused_naming_the_variable(cli, toy_run):
    before = snapshot(toy_run)
    one_line_error(cli("train", "--resume", str(toy_run), "--no-live", env={"WM_LR": "0.5"}), "optim.lr", "WM_LR")
    assert snapshot(toy_run) == before


def test_resume_with_force_is_refused(cli, toy_run):
    before = snapshot(toy_run)
    one_line_error(cli("train", "--resume", str(toy_run), "--force", "--no-live"), "--force", "--resume")
    assert snapshot(toy_run) == before


def test_resume_from_a_named_checkpoint_after_the_latest_is_corrupt(cli, tmp_path):
    straight, run = tmp_path / "straight", tmp_path / "run"
    assert train_toy(cli, straight).exit_code == 0
    assert train_toy(cli, run).exit_code == 0
    for name in ("trainer_state.json", "checkpoint.json"):  # best_loss is still inf at step 2: written as null
        strict_json((run / "checkpoints" / "step-2" / name).read_text())
    weights = run / "checkpoints" / "step-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    one_line_error(cli("train", "--resume", str(run), "--no-live"), "--checkpoint step-N")
    one_line_error(cli("train", "--resume", str(run), "--checkpoint", "step-3", "--no-live"), "step-3", "step-2")
    assert cli("train", "--resume", str(run), "--checkpoint", "step-2", "--no-live").exit_code == 0
    assert losses(run) == losses(straight)


def test_wrong_tensors_are_named(cli, toy_run):
    import hashlib

    from safetensors.torch import load_file, save_file

    ckpt = toy_run / "checkpoints" / "step-4"
    weights = load_file(str(ckpt / "model.safetensors"))
    first = sorted(weights)[0]
    weights["extra.weight"] = weights.pop(first)
    save_file(weights, str(ckpt / "model.safetensors"))
    meta = json.loads((ckpt / "checkpoint.json").read_text())
    meta["files"]["model.safetensors"] = hashlib.sha256((ckpt / "model.safetensors").read_bytes()).hexdigest()
    (ckpt / "checkpoint.json").write_text(json.dumps(meta))
    one_line_error(cli("audit", str(ckpt)), f"missing {first}", "unexpected extra.weight")


def test_empty_data_file_says_empty(wmkit_cli, tmp_path):
    empty = tmp_path / "rows.jsonl"
    empty.write_text("")
    one_line_error(wmkit_cli("train", "quickstart", "--data", f"jsonl:{empty}", "--out", str(tmp_path / "r")),
                   "rows.jsonl", "the file is empty")


@pytest.mark.parametrize("source", ["s3://bucket/rows.jsonl", "jsonl:s3://bucket/rows.jsonl"])
def test_s3_sources_are_named_as_urls(wmkit_cli, tmp_path, source):
    one_line_error(wmkit_cli("train", "quickstart", "--data", source, "--out", str(tmp_path / "r")),
                   "s3://", "not read directly")


def test_relative_extends_resolves_against_the_recipes_folder(wmkit_cli, tmp_path, monkeypatch):
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "base.toml").write_text('[meta]\nextends = "quickstart"\nname = "base"\n[model]\ndim = 48\n')
    (folder / "child.toml").write_text('[meta]\nextends = "base.toml"\nname = "child"\n')
    monkeypatch.chdir(tmp_path)  # not the recipe's folder
    result = wmkit_cli("recipe", "show", str(folder / "child.toml"))
    assert result.exit_code == 0, result.output
    assert "dim = 48" in result.output


def test_verdict_is_never_healthy_under_a_collapse_warning():
    from wmkit.audit import verdict
    from wmkit.audit.core import collect_warnings

    result = {"embedding_dim": 128, "gallery_size": 5000, "knn_at_5": 0.05, "random_knn_at_5": 0.001,
              "erank_online": 50.0, "erank_target": 50.0, "erank_pred": 10.0,
              "erank_centred": {"online": {"erank": 40.0, "normalised": 0.31},
                                "target": {"erank": 2.0, "normalised": 0.02},
                                "pred": {"erank": 1.5, "normalised": 0.01}},
              "std_l2": {"online": 0.06, "pred": 0.05}}
    assert [w["kind"] for w in collect_warnings(result)] == ["collapse_target", "collapse_pred"]
    judged = verdict.judge(result)
    assert judged["verdict"] != "healthy" and "healthy" not in judged["verdicts"]


# -- staleness: the cache key -------------------------------------------------------------------------
def test_cache_key_follows_the_plugin_version_and_domain_version(tmp_path):
    from wmkit.prepare import prepare

    sys.path.insert(0, str(FIXTURES))
    try:
        from wmkit_toy.domain import ToyDomain
    finally:
        sys.path.remove(str(FIXTURES))

    class Bumped(ToyDomain):
        version = "2"

    kw = dict(max_len=16, min_changed_tokens=0, cache_dir=tmp_path, progress=False, workers=1)
    a = prepare(ToyDomain({"rows": 60}), "toy:generated", plugin="wmkit-toy==0.1.0", **kw)
    b = prepare(ToyDomain({"rows": 60}), "toy:generated", plugin="wmkit-toy==0.2.0", **kw)
    c = prepare(Bumped({"rows": 60}), "toy:generated", plugin="wmkit-toy==0.1.0", **kw)
    again = prepare(ToyDomain({"rows": 60}), "toy:generated", plugin="wmkit-toy==0.1.0", **kw)
    keys = [d.meta["cache_key"] for d in (a, b, c)]
    assert len(set(keys)) == 3 and again.meta["cache_key"] == keys[0]


# -- no pickle ----------------------------------------------------------------------------------------
class _Marker:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):  # what an unpickler would run
        return (Path.touch, (Path(self.path),))


def test_a_pickle_posing_as_weights_is_never_unpickled(cli, toy_run, tmp_path):
    import hashlib
    import pickle

    marker = tmp_path / "pwned"
    ckpt = toy_run / "checkpoints" / "step-4"
    for name in ("model.safetensors", "trainer_state.safetensors"):
        (ckpt / name).write_bytes(pickle.dumps(_Marker(marker)))
    meta = json.loads((ckpt / "checkpoint.json").read_text())
    for name in ("model.safetensors", "trainer_state.safetensors"):
        meta["files"][name] = hashlib.sha256((ckpt / name).read_bytes()).hexdigest()
    (ckpt / "checkpoint.json").write_text(json.dumps(meta))
    one_line_error(cli("audit", str(ckpt)), "model.safetensors")
    one_line_error(cli("train", "--resume", str(toy_run), "--no-live"), "safetensors")
    assert not marker.exists()
    source = "\n".join(p.read_text() for p in (Path(wmkit.__file__).parent).rglob("*.py"))
    assert "torch.load(" not in source and "import pickle" not in source

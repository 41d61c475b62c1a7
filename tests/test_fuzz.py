"""Property-based fuzzing of every input wmkit reads (issue 12), through the CLI in-process.

Generated recipes, ``--set`` overrides, ``WM_*`` values, data rows and damaged checkpoints. For each
input the CLI must either accept it or exit non-zero with exactly one ``error:`` line that names
the input, no traceback, and the run directory and the prepared-data cache unchanged.

Example counts come from the Hypothesis profile (tests/conftest.py): ``ci`` (the default, keeps
this file under 3 minutes on 2 cores) or ``HYPOTHESIS_PROFILE=deep`` for a longer hunt.
"""

import json
import math
import shutil
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from wmkit.recipe import ENV_VARS, toml_value  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "wmkit_toy"
FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
                      deadline=None)

#: dotted keys of the core schema (and a few plugin keys), the ones a fuzzer should hit most
KEYS = ["meta.name", "meta.seed", "meta.extends", "data.domain", "data.source", "data.max_len", "data.window",
        "data.max_chars", "data.min_changed_tokens", "data.val_percent", "data.limit", "model.dim", "model.heads",
        "model.mlp_ratio", "model.dropout", "model.encoder.name", "model.encoder.loops", "model.predictor.name",
        "model.predictor.input_loop", "model.action.hidden", "model.projector.enabled", "model.projector.hidden",
        "model.target.ema_decay", "loss.pred.weight", "loss.pred.form", "loss.aux.type", "loss.aux.loops",
        "loss.aux.weight", "regularizer.name", "regularizer.weight", "regularizer.apply_to", "optim.lr",
        "optim.weight_decay", "optim.batch_size", "optim.warmup_steps", "optim.min_lr_ratio", "optim.grad_clip",
        "train.steps", "train.eval_every", "train.save_every", "train.keep_checkpoints", "train.device",
        "train.precision", "train.threads", "eval.batch_size", "model.dimm", "zzz.key", "model"]

scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 3, 2**31, 2**32, 2**32 - 1, 2**63, 10**20]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, 1e-308, 0.5, 1e9]),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(["cpu", "tpu", "cuda:99", "auto", "none", "vicreg", "looped_transformer", "quickstart",
                     "head", "[/CONFIG]", "s3://x/y.jsonl", "jsonl:/nonexistent.jsonl"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3))


def toml_literal(value) -> str:
    """A TOML literal for ``value`` (nan / inf included: TOML spells them nan / inf)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    return toml_value(value)


def assert_one_line(result, *names):
    """Accepted, or refused with one error line naming one of ``names``; never a traceback."""
    out = result.output
    assert "Traceback" not in out, out
    if result.exit_code == 0:
        return None
    lines = [line for line in out.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, out
    assert any(name in lines[0] for name in names), (names, lines[0])
    return lines[0]


def tree(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*")
            if p.is_file()}


# -- recipes -------------------------------------------------------------------------------------------
@FIXTURE_OK
@given(key=st.sampled_from(KEYS), value=values, base=st.sampled_from(["quickstart", "loops3_auxpred_vicreg"]))
def test_fuzz_recipe_files(wmkit_cli, tmp_path, key, value, base):
    parts = key.split(".")
    table, leaf = ".".join(parts[:-1]), parts[-1]
    body = f'[meta]\nextends = "{base}"\n' if table != "meta" else ""
    if table and table != "meta":
        body += f"[{table}]\n"
    elif table == "meta":
        body += "[meta]\n" + (f'extends = "{base}"\n' if leaf != "extends" else "")
    body += f"{leaf} = {toml_literal(value)}\n"
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "fuzzed.toml"
    path.write_text(body, encoding="utf-8")
    result = wmkit_cli("recipe", "show", str(path))
    assert_one_line(result, str(path), leaf, parts[0])


@FIXTURE_OK
@given(pairs=st.lists(st.tuples(st.sampled_from(KEYS), values), min_size=2, max_size=6, unique_by=lambda p: p[0]))
def test_fuzz_recipe_combinations(wmkit_cli, tmp_path, pairs):
    """Several keys at once (sizes against heads, loops against aux loops, ...)."""
    from wmkit.recipe import RecipeError, dump_toml, set_dotted

    tree = {"meta": {"extends": "quickstart"}}
    for key, value in pairs:
        try:
            set_dotted(tree, key, value)
        except RecipeError:
            continue  # "model" set to a scalar and then "model.dim": not expressible in TOML
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "combined.toml"
    path.write_text(dump_toml(tree), encoding="utf-8")
    names = [str(path)] + [part for key, _ in pairs for part in key.split(".")]
    assert_one_line(wmkit_cli("recipe", "show", str(path)), *names)


@FIXTURE_OK
@given(raw=st.binary(max_size=64))
def test_fuzz_recipe_bytes(wmkit_cli, tmp_path, raw):
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "bytes.toml"
    path.write_bytes(raw)
    assert_one_line(wmkit_cli("recipe", "show", str(path)), str(path), "meta", "data", "model", "loss",
                    "optim", "train", "eval", "regularizer", "unknown key")


# -- overrides and environment ---------------------------------------------------------------------------
override_text = st.one_of(values.map(toml_literal), st.text(max_size=16))


@FIXTURE_OK
@given(key=st.sampled_from(KEYS), text=override_text)
def test_fuzz_overrides(wmkit_cli, key, text):
    result = wmkit_cli("recipe", "show", "quickstart", "--set", f"{key}={text}")
    assert_one_line(result, key, key.split(".")[0], "--set")


env_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)


@FIXTURE_OK
@given(var=st.sampled_from(sorted(ENV_VARS)), text=st.one_of(env_text, override_text.filter(lambda t: "\x00" not in t)))
def test_fuzz_environment(wmkit_cli, var, text):
    assert_one_line(wmkit_cli("recipe", "show", "quickstart", env={var: text}), var)


# -- data rows ------------------------------------------------------------------------------------------------
good_row = st.builds(lambda i, extra: {"old_contents": f"x = {i}\n", "new_contents": f"x = {i}\ny = {extra}\n",
                                       "new_file": f"m{i}.py"},
                     st.integers(0, 10**6), st.text(alphabet="abc xyz_0123456789", max_size=20))
bad_value = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.lists(st.integers(), max_size=2),
                      st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@st.composite
def damaged_rows(draw):
    """Good rows with exactly one defect; returns (lines as bytes, what is wrong)."""
    rows = draw(st.lists(good_row, min_size=1, max_size=6))
    at = draw(st.integers(0, len(rows) - 1))
    defect = draw(st.sampled_from(["type", "split", "missing", "not_object", "cut", "bytes"]))
    lines = [json.dumps(dict(r, commit=f"{i:040x}")).encode() for i, r in enumerate(rows)]
    if defect == "type":
        column = draw(st.sampled_from(["old_contents", "new_contents", "new_file"]))
        lines[at] = json.dumps(dict(rows[at], commit=f"{at:040x}", **{column: draw(bad_value)})).encode()
    elif defect == "split":
        value = draw(st.text(min_size=1, max_size=8).filter(
            lambda s: s.strip().lower() not in {"train", "val", "valid", "validation", "test", "dev", "holdout"}))
        lines[at] = json.dumps(dict(rows[at], commit=f"{at:040x}", split=value)).encode()
    elif defect == "missing":
        at = 0
        lines[0] = json.dumps({"commit": "0", "new_file": "a.py", "old_contents": "x"}).encode()
    elif defect == "not_object":
        lines[at] = draw(st.sampled_from([b"[1, 2]", b"5", b'"text"', b"null"]))
    elif defect == "cut":
        lines[at] = lines[at][: draw(st.integers(1, len(lines[at]) - 2))]
    else:
        lines[at] = b'{"old_contents": "\xff\xfe", "new_contents": "x"}'
    return b"\n".join(lines) + b"\n", defect


@FIXTURE_OK
@given(case=damaged_rows())
def test_fuzz_data_rows(wmkit_cli, tmp_path, case):
    payload, _defect = case
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    data, run, cache = folder / "rows.jsonl", folder / "run", tmp_path / "cache"
    data.write_bytes(payload)
    before = tree(cache)
    result = wmkit_cli("train", "quickstart", "--data", f"jsonl:{data}", "--out", str(run), "--no-live",
                       "--set", "data.min_changed_tokens=0", "--set", "optim.batch_size=1000",
                       env={"WMKIT_CACHE_DIR": str(cache)})
    # a batch larger than any generated file: even a file that parses can never start training
    assert result.exit_code != 0
    assert_one_line(result, str(data), "data:", "rows.jsonl")
    assert not run.exists()
    after = tree(cache)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing cached was touched
    assert not [k for k in after if ".tmp-" in k]  # and no temporary left behind


# -- damaged checkpoints ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy_checkpoint(tmp_path_factory):
    """One tiny toy run; examples damage copies of its last checkpoint."""
    import sys

    from wmkit.plugins import PluginHost
    from wmkit.recipe import load_recipe
    from wmkit.train import train

    sys.path.insert(0, str(FIXTURES))
    import wmkit_toy.plugin

    host = PluginHost()
    host.register_plugin(wmkit_toy.plugin, "toy", distribution="wmkit-toy", version="0.1.0")
    recipe = load_recipe(None, domain="toy", overrides=["train.steps=2", "train.threads=1"], host=host, environ={})
    run = tmp_path_factory.mktemp("fuzz") / "run"
    train(recipe, out=run, host=host, live=False)
    return run / "checkpoints" / "step-2"


CHECKPOINT_FILES = ["model.safetensors", "checkpoint.json", "trainer_state.safetensors", "trainer_state.json"]
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                           max_leaves=6)


@pytest.fixture
def toy_plugin(register_plugin, toy_checkpoint):
    """The toy domain, registered once per test (not per example) and visible to ``wmkit_cli``."""
    import wmkit_toy.plugin

    return register_plugin(wmkit_toy.plugin, "toy", distribution="wmkit-toy", version="0.1.0")


@FIXTURE_OK
@given(name=st.sampled_from(CHECKPOINT_FILES), damage=st.sampled_from(["cut", "flip", "delete", "json"]),
       where=st.floats(0.0, 1.0), junk=json_values)
def test_fuzz_damaged_checkpoints(wmkit_cli, toy_plugin, tmp_path, toy_checkpoint, name, damage, where, junk):
    ckpt = Path(tempfile.mkdtemp(dir=tmp_path)) / "step-2"
    shutil.copytree(toy_checkpoint, ckpt)
    target = ckpt / name
    body = target.read_bytes()
    if damage == "cut":
        target.write_bytes(body[: int(where * (len(body) - 3))])
    elif damage == "flip" and name != "checkpoint.json":
        at = min(len(body) - 1, int(where * len(body)))
        target.write_bytes(body[:at] + bytes([body[at] ^ 0xFF]) + body[at + 1:])
    elif damage == "json" and name == "checkpoint.json" and not (isinstance(junk, dict) and "recipe" in junk):
        target.write_text(json.dumps(junk))
    else:
        target.unlink()
    before = tree(ckpt)
    result = wmkit_cli("audit", str(ckpt), "--val-size", "16")
    assert result.exit_code != 0
    assert_one_line(result, str(ckpt))
    assert tree(ckpt) == before

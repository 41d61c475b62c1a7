"""The plugin host: built-ins through entry points, failure isolation, duplicates, third parties."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import wmkit
from wmkit.errors import PluginError
from wmkit.plugins import KINDS, PluginHost

FIXTURES = Path(__file__).parent / "fixtures"


def make_distribution(site: Path, name: str, version: str, entry_points: dict, modules: dict) -> None:
    """An installed distribution on ``site``: modules plus a dist-info with entry points."""
    for rel, text in modules.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[wmkit]\n{lines}\n")


def run_wmkit(*args, site=None, env=None, cwd=None):
    full_env = dict(os.environ, **(env or {}))
    if site is not None:
        full_env["PYTHONPATH"] = os.pathsep.join([str(site), full_env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "wmkit.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=600)


def test_builtins_are_listed_ok(wmkit_host):
    rows = {(r["kind"], r["name"]): r for r in wmkit_host.listing()}
    for key in [("domain", "code"), ("domain", "kernel"), ("regularizer", "vicreg"), ("regularizer", "sigreg"),
                ("encoder", "looped_transformer"), ("predictor", "looped_transformer"), ("aux_loss", "pred"),
                ("aux_loss", "ntxent")]:
        assert key in rows, key
        assert rows[key]["status"] == "ok"
        assert rows[key]["distribution"] == "wmkit"
    assert not wmkit_host.errors()


def test_builtin_registration_imports_no_torch():
    code = ("import sys; from wmkit.plugins import PluginHost; h = PluginHost(); "
            "assert not h.errors(), h.errors(); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


class ToyPlugin:
    @wmkit.hookimpl
    def wmkit_register_regularizers(self, register):
        register("toy_reg", "math:sqrt", description="a toy")


def test_throwaway_plugin_registers_and_resolves(register_plugin, wmkit_host):
    record = register_plugin(ToyPlugin(), "toy-plugin")
    assert record.status == "ok"
    assert "toy_reg" in wmkit_host.names("regularizer")
    import math

    assert wmkit_host.resolve("regularizer", "toy_reg") is math.sqrt
    assert record.hooks == ["wmkit_register_regularizers"]


class DuplicateVicreg:
    @wmkit.hookimpl
    def wmkit_register_regularizers(self, register):
        register("vicreg", "math:sqrt")


def test_duplicate_name_is_an_error_naming_both_distributions(register_plugin, wmkit_host):
    record = register_plugin(DuplicateVicreg(), "dupe", distribution="wmkit-dupe")
    assert record.status == "error"
    assert "'vicreg'" in record.error and "wmkit-dupe" in record.error and "distribution wmkit" in record.error
    # the original is untouched
    assert wmkit_host.get("regularizer", "vicreg").plugin == "regularizers"


class RaisingPlugin:
    @wmkit.hookimpl
    def wmkit_register_domains(self, register):
        raise RuntimeError("boom")


def test_plugin_raising_in_registration_is_reported_not_fatal(register_plugin, wmkit_host):
    record = register_plugin(RaisingPlugin(), "raiser")
    assert record.status == "error" and "boom" in record.error
    assert "code" in wmkit_host.names("domain")


def test_strict_mode_turns_errors_into_failures():
    host = PluginHost(strict=True)
    with pytest.raises(PluginError, match="raiser"):
        host.register_plugin(RaisingPlugin(), "raiser")


class MisspelledHook:
    @wmkit.hookimpl
    def wmkit_register_domain(self, register):  # typo: missing "s"
        pass


def test_unknown_hook_is_reported(wmkit_host):
    record = wmkit_host.register_plugin(MisspelledHook(), "typo")
    assert record.status == "error" and "wmkit_register_domain" in record.error


def test_unknown_component_lists_available(wmkit_host):
    with pytest.raises(PluginError, match="unknown domain 'cobol'; available: code, kernel"):
        wmkit_host.get("domain", "cobol")


def test_every_hookspec_is_documented():
    docs = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    for hook in KINDS.values():
        assert f"`{hook}(register)`" in docs, f"{hook} missing from docs/plugins.md"


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_can_be_registered_by_a_third_party(kind, wmkit_host):
    hook = KINDS[kind]
    plugin = type("P", (), {hook: wmkit.hookimpl(lambda self, register: register(f"extra_{kind}", "math:pi"))})()
    record = wmkit_host.register_plugin(plugin, f"third-{kind}")
    assert record.status == "ok", record.error
    assert f"extra_{kind}" in wmkit_host.names(kind)


def test_broken_plugin_is_listed_with_error_and_commands_keep_working(tmp_path):
    make_distribution(tmp_path, "wmkit-broken", "0.0.1", {"broken": "wmkit_broken"},
                      {"wmkit_broken.py": "raise ImportError('missing dependency frobnicate')\n"})
    out = run_wmkit("plugins", "--json", site=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    broken = [r for r in rows if r["plugin"] == "broken"]
    assert broken and broken[0]["status"] == "error" and "frobnicate" in broken[0]["error"]
    assert broken[0]["version"] == "0.0.1"
    assert all(r["status"] == "ok" for r in rows if r["plugin"] != "broken")
    out = run_wmkit("recipes", site=tmp_path)
    assert out.returncode == 0 and "quickstart" in out.stdout
    assert "broken" in out.stderr  # one warning line, no traceback
    assert "Traceback" not in out.stderr
    out = run_wmkit("--strict-plugins", "recipes", site=tmp_path)
    assert out.returncode != 0 and "frobnicate" in out.stderr and "Traceback" not in out.stderr
    out = run_wmkit("plugins", "--json", site=tmp_path, env={"WMKIT_DISABLE_PLUGINS": "broken"})
    rows = json.loads(out.stdout)
    assert [r["status"] for r in rows if r["plugin"] == "broken"] == ["blocked"]


def install_toy(site: Path) -> None:
    src = FIXTURES / "wmkit_toy" / "wmkit_toy"
    shutil.copytree(src, site / "wmkit_toy")
    make_distribution(site, "wmkit-toy", "0.1.0", {"toy": "wmkit_toy.plugin"}, {})


def test_third_party_domain_is_listed_resolvable_and_trains(tmp_path):
    site = tmp_path / "site"
    install_toy(site)
    out = run_wmkit("plugins", "--json", site=site)
    rows = json.loads(out.stdout)
    toy = [r for r in rows if r["name"] == "toy"]
    assert toy == [{"name": "toy", "kind": "domain", "plugin": "toy", "distribution": "wmkit-toy",
                    "version": "0.1.0", "status": "ok", "error": None,
                    "description": "integer sequences edited by add / reverse / drop rules"}]
    out = run_wmkit("recipe", "show", "--domain", "toy", site=site)
    assert out.returncode == 0, out.stderr
    assert 'domain = "toy"' in out.stdout and "rows = 400" in out.stdout
    run = tmp_path / "run"
    out = run_wmkit("train", "--domain", "toy", "--out", str(run), site=site,
                    env={"WMKIT_CACHE_DIR": str(tmp_path / "cache")})
    assert out.returncode == 0, out.stderr
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "loss" in m and "event" not in m] == [1, 2, 3, 4, 5, 6]
    assert (run / "checkpoints" / "step-6" / "model.safetensors").exists()
    config = json.loads((run / "config.json").read_text())
    assert config["components"]["domain"] == {"name": "toy", "plugin": "toy", "version": "0.1.0"}

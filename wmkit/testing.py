"""Pytest fixtures for wmkit and for plugin authors (installed as the ``wmkit`` pytest11 plugin).

- ``wmkit_host``: a fresh :class:`wmkit.plugins.PluginHost` with the installed plugins loaded;
- ``register_plugin``: register a throwaway plugin object for one test (unregistered afterwards);
- ``wmkit_cli``: run the ``wmkit`` CLI in-process with click's ``CliRunner``; returns the result;
- ``commitpack_jsonl``: write rows in the CommitPackFT schema to a JSON Lines file.

Import-light: nothing here imports torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture
def wmkit_host():
    from wmkit.plugins import PluginHost, reset_host

    host = PluginHost()
    reset_host(host)
    yield host
    reset_host(None)


@pytest.fixture
def _wmkit_registrations():
    """In-process plugins registered by ``register_plugin`` in this test: ``wmkit_cli`` re-adds them."""
    return []


@pytest.fixture
def register_plugin(wmkit_host, _wmkit_registrations):
    """``register_plugin(obj, name)`` -> PluginRecord; the plugin disappears after the test. It is
    also visible to the ``wmkit_cli`` fixture's commands."""
    names = []

    def register(obj, name: str, **kwargs):
        names.append(name)
        _wmkit_registrations.append((obj, name, kwargs))
        return wmkit_host.register_plugin(obj, name, **kwargs)

    yield register
    for name in names:
        if wmkit_host.pm.get_plugin(name) is not None:
            wmkit_host.pm.unregister(name=name)


@pytest.fixture
def wmkit_cli(_wmkit_registrations):
    """``wmkit_cli(*args, env=None)``: each call gets a fresh host (so ``env`` applies to plugin
    loading) holding the installed plugins and those added with ``register_plugin``."""
    import os
    from unittest import mock

    from click.testing import CliRunner

    from wmkit.cli import cli
    from wmkit.plugins import PluginHost, reset_host

    runner = CliRunner()

    def invoke(*args: str, env: dict | None = None):
        reset_host(None)
        if _wmkit_registrations:
            changes = {k: v for k, v in (env or {}).items() if v is not None}
            with mock.patch.dict(os.environ, changes):
                for k, v in (env or {}).items():
                    if v is None:
                        os.environ.pop(k, None)
                host = PluginHost()
                for obj, name, kwargs in _wmkit_registrations:
                    host.register_plugin(obj, name, **kwargs)
            reset_host(host)
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    yield invoke
    reset_host(None)


def write_commitpack_jsonl(path: Path, rows: list[dict]) -> Path:
    """Write ``rows`` (CommitPackFT fields; missing ones filled with defaults) to ``path``."""
    defaults = {"commit": "", "old_file": "f.py", "new_file": "f.py", "old_contents": "", "new_contents": "",
                "subject": "edit", "message": "edit", "lang": "Python", "license": "mit", "repos": "test/repo"}
    path = Path(path)
    with path.open("w", encoding="utf-8") as fh:
        for i, row in enumerate(rows):
            full = {**defaults, "commit": f"{i:040x}", **row}  # a row may carry its own commit
            fh.write(json.dumps(full) + "\n")
    return path


@pytest.fixture
def commitpack_jsonl(tmp_path):
    def make(rows: list[dict], name: str = "rows.jsonl") -> Path:
        return write_commitpack_jsonl(tmp_path / name, rows)

    return make


"""Test setup: offline hub, a throwaway cache, no stray WM_* variables."""

import os
import tempfile
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("WMKIT_CACHE_DIR", tempfile.mkdtemp(prefix="wmkit-test-cache-"))
for _var in [v for v in os.environ if v.startswith("WM_") or v.startswith("WMKIT_") and v != "WMKIT_CACHE_DIR"]:
    del os.environ[_var]

try:  # the fuzz suite's budgets: "ci" (default) keeps tests/test_fuzz.py under 3 minutes on 2 cores
    from hypothesis import settings as _hypothesis_settings
except ImportError:  # pragma: no cover - hypothesis is in the [test] extra
    pass
else:
    _hypothesis_settings.register_profile("ci", max_examples=12, deadline=None, print_blob=True)
    _hypothesis_settings.register_profile("deep", max_examples=300, deadline=None, print_blob=True)
    _hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test saying what it needs."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs ../shared/data/{'/'.join(parts)} (the real-data set beside the checkout); absent here")
    return path


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), to kill a whole tree of workers in a test."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out

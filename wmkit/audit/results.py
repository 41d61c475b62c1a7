"""An audit's result on disk: where it lives in a run (``audit.json``), JSON conversion, save and load."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

AUDIT_FORMAT = "wmkit-audit/1"

AUDIT_FILE = "audit.json"


def audit_path(run_dir: str | Path) -> Path:
    """Where ``wmkit audit`` saves its result for ``wmkit compare``: ``RUN_DIR/audit.json``.

    It holds the latest audit of the run; the checkpoint, gallery size and options are inside, and
    ``compare`` re-runs the audit when the saved one is of another checkpoint.
    """
    return Path(run_dir) / AUDIT_FILE


def to_jsonable(obj):
    """NumPy scalars/arrays and NaN -> plain JSON values (NaN and inf become ``None``)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_result(result: dict, path: str | Path) -> Path:
    """Write ``result`` as JSON atomically."""
    from wmkit.checkpoint import write_json_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, to_jsonable(result))
    return path


def load_result(path: str | Path) -> dict | None:
    """A saved audit, or ``None`` if absent, unreadable or of another format."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == AUDIT_FORMAT else None

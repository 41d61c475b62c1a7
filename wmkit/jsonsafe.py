"""JSON that every reader accepts: non-finite floats (NaN, ±inf) become ``null``.

Python's ``json`` writes bare ``NaN``/``Infinity``, which are not JSON; a diverged loss or a
collapsed metric must not make ``metrics.jsonl`` or a report unreadable.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (also inside dicts, lists, tuples) replaced by ``None``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`finite` ``(obj)``; raises rather than writing invalid JSON."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)

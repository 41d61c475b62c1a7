"""Checkpoint audit: discriminability, geometry probes, memorisation warnings, reports.

Public API (the ``wmkit audit`` command calls these):

- :func:`run_audit` (``wmkit.audit.core``): audit a run or checkpoint directory -> JSON-ready dict;
- :func:`render_report` (``wmkit.audit.report``): the rich terminal report of a result;
- :func:`write_html` (``wmkit.audit.html``): a self-contained HTML page of a result.

Importing this package does not import torch or faiss (they load when an audit runs).
"""

from wmkit.audit.core import audit_path, load_result, run_audit, save_result
from wmkit.audit.html import write_html
from wmkit.audit.report import render_report

__all__ = ["run_audit", "render_report", "write_html", "audit_path", "load_result", "save_result"]

# ``wmkit.audit(run, ...)`` is the Python API's audit (wmkit.api)
from wmkit import _callable_module  # noqa: E402

_callable_module(__name__, "audit")

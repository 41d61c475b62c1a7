"""The ``jsonl`` logger: one JSON object per line in ``RUN_DIR/metrics.jsonl``.

Rows keep the names wmkit has always written (a step row: ``step, loss, <terms>, lr, grad_norm``; an
``eval`` row: the probe's metrics) and add the namespaced names (``train/loss``, ``val/knn_at_1``).
"""

from __future__ import annotations

from wmkit import jsonsafe
from wmkit.loggers import Logger, legacy_row


class JsonlLogger(Logger):
    """Appends to ``metrics.jsonl`` (a resumed run's file was already cut back to its checkpoint)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.file = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")

    def _write(self, row: dict) -> None:
        self.file.write(jsonsafe.dumps(row) + "\n")  # a NaN loss is written as null
        self.file.flush()

    def log_metrics(self, step, metrics):
        self._write(legacy_row(step, metrics))

    def log_warning(self, step, kind, message):
        self._write({"event": "warning", "step": step, "kind": kind, "message": message})

    def log_event(self, step, name, fields):
        self._write({"event": name, "step": step, **fields})

    def log_summary(self, step, metrics):
        self._write({"event": "audit", "step": step, **metrics})

    def close(self):
        self.file.close()

"""The ``mlflow`` logger: one MLflow run per wmkit run (``wmkit[mlflow]``, which installs ``mlflow-skinny``).

The MLflow run's id is kept in ``RUN_DIR/mlflow.json``: a resumed run and a later ``wmkit audit`` log
to the same MLflow run. The default store is a local file store in ``RUN_DIR/mlruns``; MLflow 3 keeps
that backend in maintenance mode behind ``MLFLOW_ALLOW_FILE_STORE``, which this logger sets for
``file:`` URIs (unless already set) because the database backends need the full ``mlflow`` package.
"""

from __future__ import annotations

import json
import os
import time

from wmkit.loggers import Logger
from wmkit_loggers.plugin import MLflowOptions

#: MLflow's hyper-parameter batches hold at most this many params, each value at most this long
PARAM_BATCH = 100
PARAM_LENGTH = 6000
RUN_FILE = "mlflow.json"


class MlflowLogger(Logger):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise ImportError(f"the mlflow package is missing ({exc}); pip install 'wmkit[mlflow]'") from None
        opts = MLflowOptions.of(self.settings)
        uri = opts.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or \
            (self.run_dir / "mlruns").resolve().as_uri()
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        # a tracker must not stall training for minutes: few, short retries (unless set otherwise)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        self.client = MlflowClient(tracking_uri=uri)
        self.uri = uri
        self.run_id = self._recorded_run()
        if self.run_id is None:
            name = opts.experiment
            experiment = self.client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
            run = self.client.create_run(experiment_id, run_name=self.run_name,
                                         tags={"wmkit.run_dir": str(self.run_dir.resolve())})
            self.run_id = run.info.run_id
            (self.run_dir / RUN_FILE).write_text(json.dumps({"tracking_uri": uri, "run_id": self.run_id}) + "\n",
                                                 encoding="utf-8")

    def _recorded_run(self) -> str | None:
        """The MLflow run this wmkit run already logs to (same tracking URI), if any."""
        try:
            recorded = json.loads((self.run_dir / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(recorded, dict) or recorded.get("tracking_uri") != self.uri:
            return None
        return recorded.get("run_id") or None

    def log_hyperparameters(self, params):
        from mlflow.entities import Param

        # a long list (data.holdout_repos) is cut rather than lose every param; config.json has it whole
        items = [Param(k, str(v) if len(str(v)) <= PARAM_LENGTH else str(v)[:PARAM_LENGTH - 1] + "…")
                 for k, v in params.items()]
        for start in range(0, len(items), PARAM_BATCH):
            self.client.log_batch(self.run_id, params=items[start:start + PARAM_BATCH])

    def log_metrics(self, step, metrics):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
        if batch:
            self.client.log_batch(self.run_id, metrics=batch)

    def log_warning(self, step, kind, message):
        self.client.set_tag(self.run_id, f"warning.{kind}", f"step {step}: {message}")

    def log_event(self, step, name, fields):
        self.client.set_tag(self.run_id, f"event.{name}", json.dumps({"step": step, **fields}))

    def log_summary(self, step, metrics):
        numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.log_metrics(step, numbers)
        for k, v in metrics.items():
            if k not in numbers and v is not None:
                self.client.set_tag(self.run_id, k, str(v))

    def close(self):
        self.client.set_terminated(self.run_id)

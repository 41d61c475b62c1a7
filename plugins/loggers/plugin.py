"""Registration of the built-in loggers (import-light: neither tensorboard nor mlflow is imported here)."""

import wmkit
from wmkit.options import Options
from wmkit.schema import Field


class TensorBoardOptions(Options):
    dir = Field(str, "tensorboard", "event-file folder, relative to the run directory (or absolute)")
    flush_secs = Field(int, 30, "seconds between flushes of the event file", minimum=1)


class MLflowOptions(Options):
    tracking_uri = Field(str, "", "MLflow tracking URI; empty: $MLFLOW_TRACKING_URI, else a local file store "
                         "in RUN_DIR/mlruns")
    experiment = Field(str, "wmkit", "MLflow experiment (created when missing)")


@wmkit.hookimpl
def wmkit_register_loggers(register):
    register("jsonl", "wmkit_loggers.jsonl:JsonlLogger", options={},
             description="RUN_DIR/metrics.jsonl, the source of truth every wmkit reader uses (always on)")
    register("tensorboard", "wmkit_loggers.tensorboard:TensorBoardLogger", options=TensorBoardOptions,
             description="TensorBoard event files in RUN_DIR/tensorboard (pip install 'wmkit[tensorboard]')")
    register("mlflow", "wmkit_loggers.mlflow:MlflowLogger", options=MLflowOptions,
             description="an MLflow run: params, metrics, tags (pip install 'wmkit[mlflow]')")

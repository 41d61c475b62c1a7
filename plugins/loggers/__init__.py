"""Built-in experiment loggers: jsonl (metrics.jsonl, always on), tensorboard, mlflow."""

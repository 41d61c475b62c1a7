"""The ``tensorboard`` logger: event files that ``tensorboard --logdir RUN_DIR/tensorboard`` shows.

Written with torch's ``SummaryWriter`` (which needs the ``tensorboard`` package: ``wmkit[tensorboard]``).
"""

from __future__ import annotations

import json
from pathlib import Path

from wmkit.loggers import Logger
from wmkit_loggers.plugin import TensorBoardOptions


class TensorBoardLogger(Logger):
    """Scalars per step; warnings and events as text; the recipe as hyper-parameters."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ImportError(f"the tensorboard package is missing ({exc}); pip install 'wmkit[tensorboard]'") from None
        opts = TensorBoardOptions.of(self.settings)
        self.log_dir = self.run_dir / Path(opts.dir).expanduser()
        # a resumed run drops the events it logged past its checkpoint
        self.writer = SummaryWriter(str(self.log_dir), flush_secs=opts.flush_secs,
                                    purge_step=self.start_step + 1 if self.start_step else None)

    def log_hyperparameters(self, params):
        from torch.utils.tensorboard.summary import hparams

        plain = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in params.items()}
        for summary in hparams(plain, {}):
            self.writer.file_writer.add_summary(summary)

    def log_metrics(self, step, metrics):
        for name, value in metrics.items():
            if value is not None:
                self.writer.add_scalar(name, value, step)

    def log_warning(self, step, kind, message):
        self.writer.add_text(f"warnings/{kind}", message, step)

    def log_event(self, step, name, fields):
        self.writer.add_text(f"events/{name}", json.dumps(fields), step)

    def log_summary(self, step, metrics):
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(name, value, step)
            elif value is not None:
                self.writer.add_text(name, str(value), step)
        self.writer.flush()

    def close(self):
        self.writer.close()

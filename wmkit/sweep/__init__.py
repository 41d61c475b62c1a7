"""``wmkit sweep``: a grid of recipe overrides × seeds, each an ordinary run directory, audited at chosen
checkpoints, resumable after a crash, reported as the paper's ablation log and cross-seed matrix.

- :mod:`wmkit.sweep.plan`: the plan (grid, seeds, steps, audits) from flags or a ``[sweep]`` TOML table,
  validated before anything starts; ``sweep.json`` (plan + each run's state);
- :mod:`wmkit.sweep.run`: one sweep run (train in segments up to each audited step, audit there), and the
  executors that run many (local processes, Ray tasks);
- :mod:`wmkit.sweep.report`: the ablation log, the cross-seed matrix, their tables, files and HTML.

Importing this package imports no torch.
"""

# ``wmkit.sweep(recipe, ...)`` is the Python API's sweep (wmkit.api)
from wmkit import _callable_module  # noqa: E402

_callable_module(__name__, "sweep")

"""What long commands show while they run: rich live views on a terminal, plain lines otherwise.

:class:`TrainingView` for training, :class:`PreparingView` for data preparation, :func:`task_bar` for
counted work (encoding in the audit, the retrieval bench and edit search). rich loads on first use.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

#: loss terms shown in the live view and the plain lines, in this order, when present
SHOWN_TERMS = ("loss", "pred", "dir", "mag", "cov", "reg", "aux")


def _terms(row: dict) -> str:
    return " ".join(f"{k} {row[k]:.4f}" for k in SHOWN_TERMS if k in row)


class TrainingView:
    """Context manager fed with one row per step and one per evaluation."""

    def __init__(self, *, console: Console | None, total: int, start: int, live: bool | None, title: str,
                 quiet: bool = False):
        from rich.console import Console

        # quiet: show nothing (the ranks other than 0 of a torchrun job)
        self.console = Console(quiet=True) if quiet else console or Console(stderr=True)
        self.quiet = quiet
        self.total, self.start = total, start
        self.live = self.console.is_terminal if live is None else live
        self.title = title
        self.every = max(1, (total - start) // 20)
        self.t0 = time.perf_counter()
        self.progress: Progress | None = None

    def __enter__(self):
        self.console.print(f"[bold]training[/] {self.title}")
        if self.live:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("step {task.completed}/{task.total}"), BarColumn(),
                                     TextColumn("{task.fields[rate]:.2f} steps/s"), TimeRemainingColumn(),
                                     TextColumn("{task.fields[terms]}"), console=self.console, transient=False)
            self.task = self.progress.add_task("train", total=self.total, completed=self.start, rate=0.0, terms="")
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False

    def _rate(self, step: int) -> float:
        elapsed = time.perf_counter() - self.t0
        return (step - self.start) / elapsed if elapsed > 0 else 0.0

    def update(self, step: int, row: dict) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=step, rate=self._rate(step), terms=_terms(row))
        elif not self.quiet and (step % self.every == 0 or step == self.total):
            rate = self._rate(step)
            eta = (self.total - step) / rate if rate > 0 else float("nan")
            print(f"step {step}/{self.total}  {rate:.2f} steps/s  eta {eta:.0f}s  {_terms(row)}",
                  file=sys.stderr, flush=True)

    def show_eval(self, step: int, metrics: dict) -> None:
        n = metrics.get("gallery_size", 0)
        line = (f"eval step {step}: KNN@1 {metrics['knn_at_1']:.3f} (copy {metrics['copy_knn_at_1']:.3f}, random "
                f"{metrics['random_knn_at_1']:.3f})  KNN@5 {metrics['knn_at_5']:.3f} (copy {metrics['copy_knn_at_5']:.3f})  "
                f"beats copy {100 * metrics['beats_copy']:.1f}%  cos {metrics['cos']:.3f}  delta_cos "
                f"{metrics['delta_cos']:.3f}  erank on/tgt/pred {metrics['erank_online']:.1f}/"
                f"{metrics['erank_target']:.1f}/{metrics['erank_pred']:.1f}  gallery N={n}")
        if self.progress is not None:
            self.progress.console.print(line)
        elif not self.quiet:
            print(line, file=sys.stderr, flush=True)

    def warn(self, message: str) -> None:
        if self.progress is not None:
            self.progress.console.print(f"[bold yellow]warning[/] {message}")
        elif not self.quiet:
            print(f"warning: {message}", file=sys.stderr, flush=True)


def task_bar(enabled: bool, console: "Console | None" = None) -> "Progress":
    """A transient bar per task (description, bar, done/total, elapsed) on stderr; shows nothing when
    not ``enabled``. Use as a context manager; ``add_task(label, total=n)``, then ``advance``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console or Console(stderr=True), transient=True, disable=not enabled)


class PreparingView:
    """Data preparation: a rich display of rows read and kept on a terminal; otherwise nothing until
    a final one-line summary."""

    def __init__(self, enabled: bool, label: str):
        self.enabled = enabled
        self.live = enabled and sys.stderr.isatty()
        self.bar = None
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.bar = Progress(SpinnerColumn(), TextColumn("[bold]preparing[/] {task.description}"), BarColumn(),
                                TextColumn("{task.fields[read]} rows read, {task.fields[kept]} kept"),
                                TextColumn("{task.fields[rate]:.0f} rows/s"), TimeElapsedColumn(),
                                console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task(label, total=None, read=0, kept=0, rate=0.0)
            self.bar.start()
        self.t0 = time.perf_counter()

    def update(self, read: int, kept: int) -> None:
        if self.bar is not None:
            elapsed = time.perf_counter() - self.t0
            self.bar.update(self.task, read=read, kept=kept, rate=read / elapsed if elapsed > 0 else 0.0)

    def close(self, summary: str | None = None) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
        if summary and self.enabled:
            print(summary, file=sys.stderr, flush=True)

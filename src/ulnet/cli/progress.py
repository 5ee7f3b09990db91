"""A progress bar on standard error for long file work (only on a terminal)."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager


def _total_bytes(inputs) -> int | None:
    total = 0
    for p in inputs:
        if p == "-":
            return None
        try:
            total += os.path.getsize(p)
        except OSError:
            return None
    return total


@contextmanager
def progress_bar(inputs, enabled: bool | None = None):
    """Yields update(done_bytes). A no-op unless standard error is a terminal."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield lambda done: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                  transient=True) as prog:
        task = prog.add_task("reading", total=_total_bytes(inputs))
        yield lambda done: prog.update(task, completed=done)

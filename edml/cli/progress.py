"""Progress for long commands: on a terminal a live bar, in CI and logs nothing.

Interactive means stderr is a terminal and ``CI`` is not set to a true value (GitHub Actions,
GitLab CI and most runners set ``CI=true``; some allocate a pseudo-terminal all the same). A
bar redrawn with carriage returns is noise in a log file, so off a terminal commands print
only their final report.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from edml.core.config import boolean


def interactive(stream: IO[str] | None = None, env: dict[str, str] | None = None) -> bool:
    """Whether to show progress: ``stream`` (stderr) is a terminal and CI is not set."""
    stream = sys.stderr if stream is None else stream
    ci = (os.environ if env is None else env).get("CI", "")
    try:
        in_ci = boolean(ci)
    except ValueError:
        in_ci = True  # CI set to anything else (a runner's name) still means CI
    return not in_ci and hasattr(stream, "isatty") and stream.isatty()


def progress_bar(*, show: bool | None = None, count: bool = True) -> Progress:
    """A rich Progress on stderr with a bar (and ``done/total`` when ``count``); disabled off a terminal."""
    console = Console(stderr=True)
    enabled = interactive(console.file) if show is None else show
    columns: list[ProgressColumn] = [SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn()]
    if count:
        columns.append(MofNCompleteColumn())
    columns.append(TimeElapsedColumn())
    return Progress(*columns, console=console, disable=not enabled, transient=True)


class _LatestMessage(logging.Handler):
    """Shows each log record's message as the description of a progress task."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        super().__init__(logging.INFO)
        self._progress, self._task = progress, task

    def emit(self, record: logging.LogRecord) -> None:
        self._progress.update(self._task, description=record.getMessage()[:100])


@contextmanager
def following_logs(title: str, logger: str) -> Iterator[Progress]:
    """A spinner with the elapsed time and the latest log message of ``logger``, on a terminal only.

    The handler goes on ``logger``, not on the root: a ``logging.basicConfig`` of the command still
    finds the root without handlers and sets up the log as usual.
    """
    progress = progress_bar(count=False)
    with progress:
        task = progress.add_task(title, total=None)
        handler = _LatestMessage(progress, task)
        target = logging.getLogger(logger)
        if not progress.disable:
            target.addHandler(handler)
        try:
            yield progress
        finally:
            target.removeHandler(handler)

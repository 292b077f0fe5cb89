"""Live output while a run is under way: each write as it lands, a progress bar, a spinner.

- `LiveWrites` follows an apply (or a rotation's sync step) write by write. On a terminal it
  shows a rich progress bar with the count and the time remaining, and prints each write's line
  above it; off a terminal (CI logs, pipes) it prints one plain line per write, flushed at once,
  and no bar. With `--json` (stdout carries one JSON document at the end) it shows the bar and
  lines on stderr when stderr is a terminal, and nothing at all otherwise.
- `alive(text)` shows a spinner on stderr while something slow runs (planning many
  repositories, waiting for a lock), on a terminal only: logs and pipes get nothing.

Lines name writes, never values (a change carries none).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TextIO

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.status import Status

from envmatrix.pipeline.apply import ItemResult
from envmatrix.render.report import console, result_line

BAR_DESCRIPTION = "Applying"


class LiveWrites:
    """An `ApplyProgress` (envmatrix/workflow.py) that renders each write as it lands.

    Use as a context manager: leaving it removes the bar and stops the spinner, also on errors.
    `busy(text)` shows a spinner until the first write starts (or `pause()` before a prompt)."""

    def __init__(self, stream: TextIO | None, terminal: bool, busy_stream: TextIO | None) -> None:
        self._out = console(stream) if stream is not None else None
        self._terminal = terminal  # a bar above the lines (else plain lines, one per write)
        self._busy_console = console(busy_stream) if busy_stream is not None else None
        self._status: Status | None = None
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self.shown = 0  # how many results were printed live

    @classmethod
    def for_command(cls, json_output: bool) -> LiveWrites:
        """The live output a command gets: see the module's docstring for the rules."""
        if json_output:
            stream = sys.stderr if sys.stderr.isatty() else None
            return cls(stream, stream is not None, stream)
        busy = sys.stderr if sys.stderr.isatty() else None
        return cls(sys.stdout, sys.stdout.isatty(), busy)

    @property
    def prints_lines(self) -> bool:
        """Whether each write's line is printed as it lands (so the end shows only a summary)."""
        return self._out is not None

    def busy(self, text: str) -> None:
        """A spinner with `text` on stderr (a terminal only) until `start` or `pause`."""
        if self._busy_console is None or self._status is not None:
            return
        self._status = self._busy_console.status(text, spinner="dots")
        self._status.start()

    def pause(self) -> None:
        """Stop the spinner (before a prompt, or when the slow part is over)."""
        if self._status is not None:
            self._status.stop()
            self._status = None

    def start(self, total: int) -> None:
        """`total` writes begin: the bar (on a terminal) starts at 0 of `total`."""
        self.pause()
        if self._out is None or not self._terminal or total == 0:
            return
        if self._bar is None:
            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self._out,
                transient=True,  # gone at the end: the summary line says how it ended
            )
            self._bar.start()
        if self._task is None:
            self._task = self._bar.add_task(BAR_DESCRIPTION, total=total)
        else:  # a rotation syncs once per group: one bar, reset per sync
            self._bar.reset(self._task, total=total)

    def result(self, result: ItemResult) -> None:
        """One write landed (or failed): its line now, and the bar one step on."""
        if self._out is None:
            return
        self._out.print(result_line(result))
        self._out.file.flush()
        self.shown += 1
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task)

    def close(self) -> None:
        """Remove the bar and stop the spinner."""
        self.pause()
        if self._bar is not None:
            self._bar.stop()
            self._bar, self._task = None, None

    def __enter__(self) -> LiveWrites:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


@contextmanager
def alive(text: str) -> Iterator[None]:
    """A spinner with `text` on stderr while the block runs, when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield
        return
    with console(sys.stderr).status(text, spinner="dots"):
        yield

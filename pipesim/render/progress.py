"""A progress bar on stderr for work that takes more than about a second.

It appears once a second has passed (from a timer, so it appears even while a user's policy
computes and no progress is reported), only when stderr is a terminal, and is updated in the
coarse steps the caller reports (a sweep's rows, a simulation's batches of events). A
simulation may also hand it a `status` to show, such as which device's policy it is waiting
on. Machine output on stdout is never touched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

_DELAY = 1.0


class DeferredProgress:
    """Call it as `progress(done, total)`; use it as a context manager."""

    def __init__(self, description: str, enabled: bool = True) -> None:
        self._console = Console(stderr=True)
        self._enabled = enabled and self._console.is_terminal
        self._description = description
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._counts: tuple[int, int | None] = (0, None)
        self._status: Callable[[], str | None] = lambda: None
        self._timer: threading.Timer | None = None

    def __call__(self, done: int, total: int) -> None:
        if not self._enabled:
            return
        with self._lock:
            self._counts = (done, total)
            if self._progress is not None and self._task is not None:
                self._progress.update(self._task, completed=done, total=total)

    def describe(self, status: Callable[[], str | None]) -> None:
        """Show `status()` beside the bar while it returns text."""
        self._status = status

    def _start(self) -> None:
        with self._lock:
            if self._progress is not None:
                return
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                _StatusColumn(lambda: self._status()),
                console=self._console,
                transient=True,
            )
            done, total = self._counts
            self._task = self._progress.add_task(self._description, total=total, completed=done)
            self._progress.start()

    def __enter__(self) -> DeferredProgress:
        if self._enabled:
            self._timer = threading.Timer(_DELAY, self._start)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            if self._progress is not None:
                self._progress.stop()


class _StatusColumn(ProgressColumn):
    def __init__(self, status: Callable[[], str | None]) -> None:
        super().__init__()
        self._status = status

    def render(self, task: Task) -> Text:
        return Text(self._status() or "", style="dim")

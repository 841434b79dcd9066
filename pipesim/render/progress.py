"""A progress bar on stderr for work that takes more than about a second.

It appears once a second has passed (from a timer, so it appears even while a user's policy
computes and no progress is reported), only when stderr is a terminal, and is updated in the
coarse steps the caller reports (a sweep's rows, a simulation's batches of events). A
simulation may also hand it a `status` to show, such as which device's policy it is waiting
on. Machine output on stdout is never touched.
"""

from __future__ import annotations

import threading
import time
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
)
from rich.text import Text

_DELAY = 1.0


class DeferredProgress:
    """Call it as `progress(done, total)`; use it as a context manager."""

    def __init__(self, description: str, enabled: bool = True) -> None:
        self._console = Console(stderr=True, markup=False)
        self._enabled = enabled and self._console.is_terminal
        self._description = description
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._counts: tuple[int, int | None] = (0, None)
        self._status: Callable[[], str | None] = lambda: None
        self._timer: threading.Timer | None = None
        self._began = time.monotonic()

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
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                _RemainingColumn(self._began),
                _StatusColumn(lambda: self._status()),
                console=self._console,
                transient=True,
            )
            done, total = self._counts
            self._task = self._progress.add_task(self._description, total=total, completed=done)
            self._progress.start()

    def __enter__(self) -> DeferredProgress:
        self._began = time.monotonic()
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


def remaining_seconds(elapsed: float, done: int, total: int | None) -> float | None:
    """Seconds left at the average pace since the work began, or None before any is done."""
    if not done or total is None or elapsed <= 0:
        return None
    return elapsed * max(0, total - done) / done


class _RemainingColumn(ProgressColumn):
    """Time left at the average pace since the work began (rich's own column estimates from
    the bar's recent updates, and a bar that appears after a second, in coarse steps, gave
    "1 s left" at 54 of 432)."""

    def __init__(self, began: float) -> None:
        super().__init__()
        self._began = began

    def render(self, task: Task) -> Text:
        total = None if task.total is None else int(task.total)
        left = remaining_seconds(time.monotonic() - self._began, int(task.completed), total)
        if left is None:
            return Text("-:--:--", style="progress.remaining")
        minutes, seconds = divmod(int(left + 0.5), 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"{hours}:{minutes:02d}:{seconds:02d}", style="progress.remaining")


class _StatusColumn(ProgressColumn):
    def __init__(self, status: Callable[[], str | None]) -> None:
        super().__init__()
        self._status = status

    def render(self, task: Task) -> Text:
        return Text(self._status() or "", style="dim")

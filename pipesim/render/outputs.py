"""The files a command can write beside what it prints: each one class with its flag, the file
names it takes and what it writes, gathered in `OUTPUTS`. The command line derives an option
from each (`cli.options.takes_outputs`), checks every path before anything runs and writes all
of a command's files together (`cli.output_files`). A new output is one class and one line.

This module imports no renderer until a file is written: the CLI reads it at start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TextIO

from pipesim.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import RenderableType

    from pipesim.analysis.report import Report
    from pipesim.simulator.trace import Trace

Contents = Callable[[TextIO], None] | bytes
"""A text file's writer, or a binary file's bytes."""

SAVED_WIDTH = 120
"""Columns of a saved terminal picture unless --width says otherwise."""


@dataclass(frozen=True)
class Shown:
    """What a command shows, from which its files are made."""

    title: str
    """What reproduces the picture: the command's settings as flags."""
    report: Report | None = None
    """The one step a run or a validation simulated (its trace and page), if any."""
    views: Sequence[RenderableType] = ()
    """What the terminal shows (saved as a picture, and beside the page's timeline)."""
    plot: Callable[[Path], bytes] | None = None
    """The command's matplotlib figure, drawn for a file of that type."""
    columns: int = SAVED_WIDTH
    measured: Trace | None = None
    """A measured run's step (`run --against`), drawn under the simulated one."""


@dataclass(frozen=True)
class Output:
    """One kind of file."""

    name: ClassVar[str]
    """The option's parameter name; the flag is --name with dashes."""
    help: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]] = ()
    """The file names it takes (any when empty)."""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, path: Path) -> None:
        """Refuse, before anything runs, a path this output will not write."""
        if self.suffixes and path.suffix.lower() not in self.suffixes:
            raise ConfigError(
                f"{self.flag} {path}: the file name must end in {' or '.join(self.suffixes)}"
            )

    def contents(self, shown: Shown, path: Path) -> Contents:
        raise NotImplementedError


@dataclass(frozen=True)
class TraceOutput(Output):
    name = "trace"
    help = "Also write a Chrome trace (JSON) to open in Perfetto or chrome://tracing."

    def contents(self, shown: Shown, path: Path) -> Contents:
        from pipesim.render.perfetto import write_chrome_trace

        report = _one_step(shown, self)
        return lambda out: write_chrome_trace(report, out)


@dataclass(frozen=True)
class PageOutput(Output):
    name = "html"
    help = (
        "Also write an interactive page: the timeline on a true time axis (zoom, pan, a "
        "tooltip per op) and the summary. Self-contained."
    )
    suffixes: ClassVar[tuple[str, ...]] = (".html", ".htm")

    def contents(self, shown: Shown, path: Path) -> Contents:
        from pipesim.render import GanttChart
        from pipesim.render.html_view import write_html_view

        report = _one_step(shown, self)
        # The page draws its own timeline: the summary beside it is the terminal's, chart aside.
        beside = [view for view in shown.views if not isinstance(view, GanttChart)]
        return lambda out: write_html_view(report, shown.title, beside, out, shown.measured)


@dataclass(frozen=True)
class TerminalOutput(Output):
    name = "save_terminal"
    help = "Also save what the terminal shows, as .svg or .html, at --width columns."
    suffixes: ClassVar[tuple[str, ...]] = (".svg", ".html", ".htm")

    def contents(self, shown: Shown, path: Path) -> Contents:
        from pipesim.render.recording import render_recording

        kind = "svg" if path.suffix.lower() == ".svg" else "html"
        return render_recording(shown.views, shown.columns, kind).encode()


@dataclass(frozen=True)
class SvgOutput(TerminalOutput):
    name = "svg"
    help = "The same as --save-terminal FILE.svg."
    suffixes: ClassVar[tuple[str, ...]] = (".svg",)


@dataclass(frozen=True)
class PlotOutput(Output):
    name = "plot"
    help = "Also draw it with matplotlib: .png, .svg or .pdf (pip install 'pipesim\\[plot]')."
    suffixes: ClassVar[tuple[str, ...]] = (".png", ".svg", ".pdf")

    def check(self, path: Path) -> None:
        from pipesim.render.plots import check_plot_path

        check_plot_path(path)  # the file type, and matplotlib itself

    def contents(self, shown: Shown, path: Path) -> Contents:
        assert shown.plot is not None, "a command that takes --plot draws one"
        return shown.plot(path)


OUTPUTS: tuple[Output, ...] = (
    TraceOutput(),
    SvgOutput(),
    PageOutput(),
    TerminalOutput(),
    PlotOutput(),
)
"""Every file output, in the order --help lists them."""
BY_NAME = {output.name: output for output in OUTPUTS}


@dataclass(frozen=True)
class Requested:
    """The files a command was asked to write: each output given, with its path."""

    paths: dict[str, Path] = field(default_factory=dict)

    def named(self) -> list[tuple[str, Path | None]]:
        """(flag, path) of each, for the up-front checks."""
        return [(BY_NAME[name].flag, path) for name, path in self.paths.items()]

    def check(self) -> None:
        for name, path in self.paths.items():
            BY_NAME[name].check(path)

    def contents(self, shown: Shown) -> list[tuple[Path, Contents]]:
        return [(path, BY_NAME[name].contents(shown, path)) for name, path in self.paths.items()]

    def __contains__(self, name: str) -> bool:
        return name in self.paths


def _one_step(shown: Shown, output: Output) -> Report:
    if shown.report is None:
        raise ConfigError(f"{output.flag} needs one simulated step")
    return shown.report

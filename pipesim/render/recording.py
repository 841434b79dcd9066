"""The terminal output saved as SVG or HTML, through rich's recording console.

The width is fixed (not the terminal's), so the same inputs give the same file on every
machine.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

from rich.console import Console, RenderableType
from rich.terminal_theme import MONOKAI


def render_recording(renderables: Iterable[RenderableType], width: int, kind: str) -> str:
    """What the terminal would show at `width` columns, as an SVG or HTML document (`kind`
    "svg" or "html")."""
    # no_color=False: a NO_COLOR in the environment is for this terminal, not for the file.
    console = Console(
        record=True,
        width=width,
        file=io.StringIO(),
        color_system="truecolor",
        force_terminal=True,
        no_color=False,
    )
    for renderable in renderables:
        console.print(renderable)
    if kind == "svg":
        return console.export_svg(title="pipesim", theme=MONOKAI)
    return console.export_html(theme=MONOKAI)

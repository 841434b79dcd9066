"""The terminal output saved as SVG or HTML, through rich's recording console.

The width is fixed (not the terminal's), so the same inputs give the same file on every
machine, and the SVG loads no font from the network.
"""

from __future__ import annotations

import io
import re
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
        markup=False,  # names, paths and models are the user's text, never markup
    )
    for renderable in renderables:
        console.print(renderable)
    if kind == "svg":
        # rich's SVG loads Fira Code from a CDN; a saved picture makes no network request
        # and takes the reader's monospace font when Fira Code is not installed
        svg = console.export_svg(title="pipesim", theme=MONOKAI)
        return _FONT_FACE.sub("", svg)
    return console.export_html(theme=MONOKAI)


_FONT_FACE = re.compile(r"@font-face \{[^}]*\}\s*")


NOTEBOOK_WIDTH = 120
"""Columns a renderable takes when a notebook displays it."""


class ShownInNotebooks:
    """A renderable that a Jupyter cell displays by itself: as the terminal would draw it at
    `NOTEBOOK_WIDTH` columns, in color (IPython asks for `_repr_html_`)."""

    def _repr_html_(self) -> str:
        return render_recording([self], NOTEBOOK_WIDTH, "html")  # type: ignore[list-item]

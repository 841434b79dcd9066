"""The terminal output saved as SVG or HTML, through rich's recording console.

The width is fixed (not the terminal's), so the same inputs give the same file on every
machine.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

from rich.console import Console, RenderableType
from rich.terminal_theme import MONOKAI

from pipesim.errors import ConfigError


def save_recording(renderables: Iterable[RenderableType], path: Path, width: int) -> None:
    """Render into a recording console of `width` columns and save as SVG or HTML, chosen by
    the file's suffix."""
    suffix = path.suffix.lower()
    if suffix not in (".svg", ".html", ".htm"):
        raise ConfigError(f"{path}: choose a .svg or .html file name")
    if width < 40:
        raise ConfigError(f"--width must be at least 40 columns, got {width}")
    console = Console(
        record=True, width=width, file=io.StringIO(), color_system="truecolor", force_terminal=True
    )
    for renderable in renderables:
        console.print(renderable)
    try:
        if suffix == ".svg":
            console.save_svg(str(path), title="pipesim", theme=MONOKAI)
        else:
            console.save_html(str(path), theme=MONOKAI)
    except OSError as error:
        raise ConfigError(f"cannot write {path}: {error.strerror or error}") from None

"""Renderers and exporters: rich renderables for the terminal, JSON for machines.

The names below are loaded when first used: the command line imports `render.outputs` at
start-up, and importing this package must not draw in every renderer with it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipesim.render.gantt import GanttChart
    from pipesim.render.json_report import write_json
    from pipesim.render.summary import SummaryTable

__all__ = ["GanttChart", "SummaryTable", "write_json"]

_HOMES = {
    "GanttChart": "pipesim.render.gantt",
    "SummaryTable": "pipesim.render.summary",
    "write_json": "pipesim.render.json_report",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'pipesim.render' has no attribute {name!r}")

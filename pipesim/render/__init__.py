"""Renderers and exporters: rich renderables for the terminal, JSON for machines."""

from pipesim.render.gantt import GanttChart
from pipesim.render.json_report import write_json
from pipesim.render.summary import SummaryTable

__all__ = ["GanttChart", "SummaryTable", "write_json"]

"""The line that names a picture: what reproduces it, as flags. Every saved file (plot, page,
terminal picture) carries it; kept apart from the plots so that a run without one does not
import them."""

from __future__ import annotations

from pipesim.analysis.report import Report
from pipesim.settings.declarations import Settings
from pipesim.settings.written import as_flags


def plot_title(report: Report, settings: Settings) -> str:
    """Everything needed to reproduce the picture: the policy, the shape and the flags."""
    pipeline = report.trace.problem.pipeline
    shape = settings.replace(
        policy=None, stages=pipeline.devices, microbatches=pipeline.microbatches
    )
    flags = " ".join(as_flags(shape))
    costs = report.trace.problem.costs
    stated = []
    if settings.forward is None and settings.model is None:
        stated.append(f"F={costs.forward[0] * pipeline.stages_on(0):g}")
    if settings.backward is None and settings.model is None:
        stated.append(f"B={costs.backward[0] * pipeline.stages_on(0):g}")
    extra = f" (defaults: {' '.join(stated)} ms)" if stated else ""
    return f"{report.trace.policy}, v={pipeline.chunks}: {flags}{extra}"

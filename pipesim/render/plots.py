"""Pictures drawn with matplotlib (an optional dependency: `pip install 'pipesim[plot]'`):
PNG, SVG or PDF by the file's extension, rendered to bytes so that the file is written whole
or not at all."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipesim.errors import ConfigError
from pipesim.studies.plan import PlanRow, pareto

FORMATS = (".png", ".svg", ".pdf")


def check_plot_path(path: Path) -> None:
    """Refuse, before anything runs, a file type matplotlib will not be asked to write, or a
    plot without matplotlib."""
    if path.suffix.lower() not in FORMATS:
        raise ConfigError(f"--plot {path}: the file name must end in {', '.join(FORMATS)}")
    _pyplot()


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        # SVG ids are salted with randomness unless told otherwise: fix it for same bytes.
        matplotlib.rcParams["svg.hashsalt"] = "pipesim"
        import matplotlib.pyplot as pyplot
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'pipesim[plot]'") from None
    return pyplot


def plan_plot(rows: Sequence[PlanRow], limit: float | None, title: str, path: Path) -> bytes:
    """Step time against peak memory for every simulated configuration, those that fit
    apart from those that do not, the Pareto front joined, the memory limit marked."""
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=(8, 5), dpi=120)
    ran = [row for row in rows if row.ran]
    for fits, color, label in ((True, "tab:blue", "fits"), (False, "tab:red", "over the limit")):
        chosen = [row for row in ran if row.fits == fits]
        if chosen:
            axes.scatter(
                [(row.peak_bytes or 0) / 1e9 for row in chosen],
                [row.step_ms or 0 for row in chosen],
                s=14,
                alpha=0.6,
                color=color,
                label=f"{label} ({len(chosen)})",
            )
    front = pareto(rows)
    if front:
        axes.plot(
            [(row.peak_bytes or 0) / 1e9 for row in front],
            [row.step_ms or 0 for row in front],
            color="black",
            linewidth=1,
            drawstyle="steps-post",
            label="Pareto front",
        )
    if limit is not None:
        axes.axvline(limit / 1e9, color="tab:red", linestyle="--", linewidth=1, label="limit")
    axes.set_xlabel("peak memory of the fullest device (GB)")
    axes.set_ylabel("step time (ms)")
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format=path.suffix.lower().lstrip("."), metadata=_metadata(path))
    pyplot.close(figure)
    return buffer.getvalue()


def _metadata(path: Path) -> dict[str, Any]:
    """No creation date in the file, so the same inputs give the same bytes."""
    suffix = path.suffix.lower()
    if suffix == ".svg":
        return {"Date": None}
    if suffix == ".pdf":
        return {"CreationDate": None}
    return {}

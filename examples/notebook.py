# %% [markdown]
# # pipesim in a notebook
#
# Cells in the percent format: open this file in Jupyter (with jupytext) or VS Code, or run
# it whole with `python examples/notebook.py`. It needs the frames extra:
# `pip install -e '.[frames,plot]'`.

# %%
from pathlib import Path
from tempfile import TemporaryDirectory

from pipesim import Settings, frames, simulate_step
from pipesim.render import GanttChart, SummaryTable
from pipesim.render.plots import timeline_plot

# Four stages, the last twice as slow, with a 0.1 ms latency between devices.
settings = Settings(
    policy="1f1b", stages=4, microbatches=8, forward=(1.0, 1.0, 1.5, 2.0), comm_latency=0.1
)
report = simulate_step(settings)

# %% [markdown]
# A chart or a table as the last expression of a cell is drawn in color, as in a terminal.

# %%
GanttChart(report.trace)

# %%
SummaryTable(report)

# %% [markdown]
# The same step as data frames: ops, transfers, activation memory over time, and devices.

# %%
tables = frames(report)
busy_by_kind = tables.ops.pivot_table(
    index="device", columns="kind", values="duration", aggfunc="sum"
)
print(busy_by_kind)

# %%
sent = tables.transfers.assign(in_flight=tables.transfers["end"] - tables.transfers["start"])
print(sent.groupby(["src", "dst"])["in_flight"].sum())

# %%
print(tables.memory.groupby("device")["activations"].max())
print(tables.devices[["device", "bubble_fraction", "wait_gradient", "drain"]])

# %% [markdown]
# Compare schedules on the same costs: each one's step time and peak.

# %%
for policy in ("gpipe", "1f1b", "zb-h1", "zb-v"):
    summary = simulate_step(settings.replace(policy=policy)).summary
    print(f"{policy:6} {summary.makespan:6.2f} ms  bubble {summary.bubble_fraction:6.1%}")

# %% [markdown]
# A plot (matplotlib, the plot extra) is a PNG file; `IPython.display.Image` shows it.

# %%
with TemporaryDirectory() as folder:
    png = timeline_plot([report], ["1f1b, uneven stages"], Path(folder) / "step.png")
print(f"a {len(png):,}-byte PNG")

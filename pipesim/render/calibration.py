"""What `pipesim calibrate` prints and writes: the fitted costs beside their spread, the
measured step beside its replay, a config file whose every number says where it came from,
and the JSON record."""

from __future__ import annotations

import json
import shlex
import statistics
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

from pipesim.render.numbers import num
from pipesim.render.style import figures_table, ms, percent, verbatim
from pipesim.settings.declarations import Settings
from pipesim.settings.written import settings_record
from pipesim.studies.calibrate import VARIED_RUNS, Calibration
from pipesim.studies.effective_mfu import EffectiveMfu

_NAMES = {"F": "forward", "B": "backward", "I": "input gradient", "W": "weight gradient"}


class CalibrationReport:
    """The fit and the replay, as people read them."""

    def __init__(
        self,
        calibration: Calibration,
        replayed: float,
        varied: float,
        config: Path | None = None,
        order: Path | None = None,
        fitted: EffectiveMfu | None = None,
        model: Settings | None = None,
    ):
        self.calibration, self.replayed, self.varied = calibration, replayed, varied
        self.config, self.order = config, order
        self.fitted, self.model = fitted, model
        """With --config: the MFU fitted, and the model settings it was fitted for."""
        """The files written (-o, --schedule-out), named in the next commands."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        calibration = self.calibration
        settings = calibration.settings
        used = calibration.steps - calibration.skip
        yield Text(
            f"measured run: {settings.stages} ranks, {len(calibration.policy.stage_placement)} "
            f"stages, m={settings.microbatches}; {calibration.steps} steps, the first "
            f"{calibration.skip} left out as warm-up",
            style="bold",
        )
        table = figures_table(
            "ms per microbatch: from the end of an action's wait for its inputs, and the "
            "runtime's work after it until the next action; mean over microbatches and "
            "steps; cv: their spread"
        )
        for header in ("stage", "rank", "action", "ms", "cv", "samples"):
            table.add_column(header, justify="left" if header == "action" else "right")
        placement = calibration.policy.stage_placement
        for fit in calibration.fits:
            table.add_row(
                str(fit.stage), str(placement[fit.stage]), _NAMES[fit.kind], ms(fit.mean),
                percent(fit.cv), str(fit.samples),
            )  # fmt: skip
        yield table
        if calibration.waits_taken_back:
            yield Text(
                f"{calibration.waits_taken_back} actions' waits counted as computing: their "
                "inputs were made on their own rank, or handed over before they began (the "
                "wait was their own receive, or the host)"
            )
        latency = settings.comm_latency or 0.0
        yield Text(
            f"message latency {ms(latency)} ms (mean of {calibration.latency_samples} "
            "messages whose consumer was already waiting)"
        )
        if settings.op_overhead is not None:
            yield Text(
                "the runtime's own time per action (between actions: posting sends and "
                "receives), in the costs above: "
                + ", ".join(
                    f"rank {rank} {ms(value)} ms" for rank, value in enumerate(settings.op_overhead)
                )
            )
        mean = statistics.fmean(calibration.measured)
        low, high = min(calibration.measured), max(calibration.measured)
        chance = f"; standard error {calibration.standard_error * 100:.1f}%" if used > 1 else ""
        yield Text.assemble(
            ("step: ", "bold"),
            f"measured {ms(mean)} ms (mean of {used}; {ms(low)}-{ms(high)}{chance}); replayed "
            f"in the measured order on the fitted costs {ms(self.replayed)} ms (",
            _signed(self.replayed / mean - 1),
            ")",
        )
        if calibration.spread:
            yield Text.assemble(
                f"  with their spread (each op drawn with cv {percent(calibration.spread)}, "
                f"the mean of {VARIED_RUNS} runs): {ms(self.varied)} ms (",
                (_signed(self.varied / mean - 1), "bold"),
                "); ops that vary lengthen a step on average",
            )
        if self.fitted is not None and self.model is not None:
            yield Text.assemble(
                ("effective MFU: ", "bold"),
                (f"{percent(self.fitted.mfu)}", "bold"),
                f" ({_described(self.model)}: its forwards and backwards take "
                f"{ms(self.fitted.at_peak_ms)} ms a microbatch at the GPU's peak, "
                f"{ms(self.fitted.measured_ms)} ms measured)",
            )
        for path in (self.config, self.order):
            if path is not None:
                yield Text(f"wrote {path}", style="dim")
        config = shlex.quote(str(self.config)) if self.config is not None else "CALIBRATED.toml"
        order = shlex.quote(str(self.order)) if self.order is not None else "MEASURED.csv"
        commands = [
            f"pipesim run --config {config} --schedule {order} --runs {VARIED_RUNS}  # the replay",
            f"pipesim compare --config {config} --runs {VARIED_RUNS}"
            "  # every schedule on these costs",
        ]
        if self.fitted is not None:
            commands.append(
                f"pipesim plan --config {config} --global-batch-size N"
                "  # other configurations of the model at this MFU"
            )
        # One command a line, each whole: a line pastes into a shell as it is.
        yield Text("next:", style="dim")
        yield verbatim(Text("\n".join("  " + command for command in commands), style="dim"))


def _described(model: Settings) -> str:
    """The model settings an MFU was fitted for, in a few words."""
    assert model.model is not None and model.gpu is not None
    resolved = model.resolved
    return (
        f"{model.model.name} on {model.gpu.name}, micro-batch {resolved.micro_batch_size} x "
        f"{model.seq_length or model.model.seq_length} tokens, t={resolved.tensor_parallel}"
    )


def _signed(error: float) -> str:
    return f"{'+' if error >= 0 else ''}{error * 100:.1f}%"


def calibration_record(
    calibration: Calibration, replayed: float, varied: float, fitted: EffectiveMfu | None = None
) -> dict[str, Any]:
    """`pipesim calibrate --format json`'s result."""
    mean = statistics.fmean(calibration.measured)
    mfu = (
        {}
        if fitted is None
        else {
            "effective_mfu": num(fitted.mfu),
            "model_at_peak_ms": num(fitted.at_peak_ms),
            "model_fixed_ms": num(fitted.fixed_ms),
            "measured_compute_ms": num(fitted.measured_ms),
        }
    )
    return {
        "traces": list(calibration.paths),
        "ranks": calibration.settings.stages,
        "placement": list(calibration.policy.stage_placement),
        "microbatches": calibration.settings.microbatches,
        "steps": calibration.steps,
        "skip": calibration.skip,
        "fits": [
            {
                "stage": f.stage,
                "kind": f.kind,
                "ms": num(f.mean),
                "cv": num(f.cv),
                "samples": f.samples,
            }
            for f in calibration.fits
        ],
        "waits_taken_back": calibration.waits_taken_back,
        "latency_ms": num(calibration.settings.comm_latency or 0.0),
        "op_overhead_ms": [num(value) for value in calibration.settings.op_overhead or ()],
        "latency_samples": calibration.latency_samples,
        "measured_step_ms": [num(value) for value in calibration.measured],
        "measured_mean_ms": num(mean),
        "standard_error": num(calibration.standard_error),
        "replayed_ms": num(replayed),
        "error": num(replayed / mean - 1),
        "spread_cv": num(calibration.spread),
        "varied_runs": VARIED_RUNS,
        "replayed_varied_ms": num(varied),
        "varied_error": num(varied / mean - 1),
        **mfu,
    }


def write_calibrated_config(
    calibration: Calibration,
    out: TextIO,
    fitted: EffectiveMfu | None = None,
    model: Settings | None = None,
) -> None:
    """The fitted settings as a `--config` file, each number with where it came from; with a
    fitted MFU, the model settings it was fitted for and the MFU, which `plan` searches with."""
    settings = calibration.settings
    out.write(
        "# pipesim calibrate: costs fitted to a measured run\n"
        f"# from: {', '.join(calibration.paths)}\n"
        f"# steps {calibration.skip + 1}-{calibration.steps} (the first {calibration.skip} "
        "left out as warm-up)\n"
        f"# replay: pipesim run --config THIS --schedule the order calibrate wrote --runs "
        f"{VARIED_RUNS};\n"
        "# what if: pipesim compare --config THIS, or --policy NAME with it\n\n"
    )
    out.write(f"stages = {settings.stages}  # ranks in the traces\n")
    out.write(f"microbatches = {settings.microbatches}  # largest microbatch index + 1\n")
    note = "per rank, the mean of its stages' actions summed (ms per microbatch)" + (
        ", less op_overhead per action" if settings.op_overhead is not None else ""
    )
    for name, values in (
        ("forward", settings.forward),
        ("backward", settings.backward),
        ("weight", settings.weight),
    ):
        if values is not None:
            listed = ", ".join(json.dumps(num(value)) for value in values)
            out.write(f"{name} = [{listed}]  # {note}\n")
    if settings.op_overhead is not None:
        listed = ", ".join(json.dumps(num(value)) for value in settings.op_overhead)
        out.write(
            f"op_overhead = [{listed}]  # per rank, the runtime's own time per action (ms): "
            "of its kinds of action, the least mean time from an action's end to the next "
            "one's span; every op pays it, and the costs above are less it\n"
        )
    latency = settings.comm_latency or 0.0
    if fitted is None:
        out.write(
            f"comm_latency = {json.dumps(num(latency))}  # mean of "
            f"{calibration.latency_samples} timed messages (ms)\n"
        )
    else:
        out.write(
            f"comm_latency = {json.dumps(num(max(0.0, latency - fitted.link_ms)))}  # the "
            f"mean of {calibration.latency_samples} timed messages ({num(latency)} ms), less "
            f"the {num(fitted.link_ms)} ms the model's activation holds the link (at least 0)\n"
        )
    if calibration.spread:
        out.write(
            f"jitter = {json.dumps(num(calibration.spread))}  # the actions' spread (cv, "
            "pooled over stages and kinds): each op is drawn around its cost with it; "
            "--runs N gives the mean step, --jitter 0 the step of mean costs\n"
        )
    if fitted is None or model is None:
        return
    out.write(
        "\n# The measured run's model, as calibrate's --config gave it: its memory, and for "
        "plan,\n# every other configuration's costs at the effective MFU below (run and "
        "compare take\n# the measured ms above instead)\n"
    )
    own = ("policy", "stages", "microbatches", "forward", "backward", "weight", "comm_latency",
           "op_overhead", "jitter", "mfu")  # fmt: skip
    defaults = settings_record(Settings(), leave_out=own)
    for key, value in settings_record(model, leave_out=own).items():
        if defaults.get(key) == value:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = json.dumps(num(value))
        else:
            text = json.dumps(str(value))
        out.write(f"{key} = {text}\n")
    out.write(
        f"mfu = {json.dumps(num(fitted.mfu))}  # effective: the model's forwards and "
        f"backwards take {num(fitted.at_peak_ms)} ms a microbatch at the GPU's peak "
        f"({num(fitted.fixed_ms)} ms of it collectives no MFU changes), "
        f"{num(fitted.measured_ms)} ms measured\n"
    )

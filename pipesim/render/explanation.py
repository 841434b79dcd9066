"""The sentences of `pipesim run --explain`, and the critical-path sentence the summary shares.

Every figure comes from the report and the `Explanation` study; this module only words them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipesim.analysis.diagnosis import Diagnosis, diagnose
from pipesim.analysis.idle_causes import LINK_CAUSES, IdleCause
from pipesim.analysis.report import Report
from pipesim.analysis.summary import Summary
from pipesim.render.numbers import num, peak
from pipesim.render.style import activations, ms, percent

if TYPE_CHECKING:
    # --explain's study, and compare's verdict, are imported when --explain is asked: the
    # summary of every run reads this module's critical-path and pace sentences.
    from pipesim.studies.explain import Explanation


def critical_path_words(summary: Summary) -> str:
    """What the makespan's critical path is made of, when messages lie on it."""
    critical = summary.path
    return (
        f"of the {ms(summary.makespan)} ms critical path, {ms(critical.compute)} ms is computing "
        f"and {ms(critical.links)} ms is messages on links "
        f"({percent(critical.links / summary.makespan)}: {ms(critical.in_flight)} ms in flight, "
        f"{ms(critical.queued)} ms queued behind others)"
    )


def pace_words(summary: Summary, diagnosis: Diagnosis) -> str:
    """Which device sets the pace, and why (uneven stages, or a straggler), or ""."""
    busiest = diagnosis.pace_setter
    if busiest is None:
        return ""
    share = busiest.busy / summary.makespan if summary.makespan > 0 else 0.0
    cause = (
        f"device {busiest.device} straggles ({diagnosis.straggling:g}x slower): it"
        if diagnosis.straggling is not None
        else f"the stages are uneven: device {busiest.device}"
    )
    return (
        f"{cause} is the busiest ({ms(busiest.busy)} ms, {percent(share)} of the makespan) "
        "and sets the pace while the others wait"
    )


def explanation_lines(report: Report, explanation: Explanation) -> list[str]:
    """A few sentences on where `report`'s bubble comes from and what would change it."""
    return [
        line
        for line in (
            _where(report),
            _pace(report),
            _links(report, explanation),
            _closed_form(report),
            _more_microbatches(report, explanation),
            *_other_policies(report, explanation),
        )
        if line
    ]


def _where(report: Report) -> str:
    summary = report.summary
    idle = sum(stats.idle for stats in summary.devices)
    if idle <= 0:
        return "Where: no device is ever idle; there is no bubble to explain."

    diagnosis = diagnose(summary, report.trace.problem)

    def share(*causes: IdleCause) -> str:
        return percent(diagnosis.share(*causes))

    computing = share(IdleCause.WAIT_ACTIVATION, IdleCause.WAIT_GRADIENT)
    return (
        f"Where: the devices are idle {ms(idle)} ms in all ({percent(summary.bubble_fraction)} "
        f"of {len(summary.devices)} x {ms(summary.makespan)} ms): pipeline fill "
        f"{share(IdleCause.WARMUP)}, drain {share(IdleCause.DRAIN)}, waiting for inputs still "
        f"being computed {computing}, waiting on links {share(*LINK_CAUSES)}."
    )


def _pace(report: Report) -> str:
    words = pace_words(report.summary, diagnose(report.summary, report.trace.problem))
    return f"Pace: {words}." if words else ""


def _links(report: Report, explanation: Explanation) -> str:
    """The critical path's share on links, and what links twice as fast would give."""
    summary = report.summary
    if summary.path.links <= 0:
        return ""
    text = (
        f"Critical path: {critical_path_words(summary)}; waits for inputs 'still being "
        "computed' often sit downstream of those links."
    )
    faster = explanation.faster_links
    if faster is None:
        return text
    gain = 1 - faster.makespan / summary.makespan
    return (
        f"{text} With every link twice as fast (half the latency, twice the bandwidth) the "
        f"step would take {ms(faster.makespan)} ms ({percent(gain)} less)."
    )


def _closed_form(report: Report) -> str:
    closed = report.closed_form
    measured = percent(report.summary.bubble_fraction)
    if closed is None:
        return f"Closed form: {report.trace.policy} has none; the simulation measures {measured}."
    if closed.bubble_fraction is None:
        return (
            f"Closed form: {closed.formula} assumes what this run breaks ({closed.reason}); "
            f"the simulation measures {measured}."
        )
    figure = report.summary.span_bubble_fraction if closed.view == "span" else None
    measured_view = percent(figure) if figure is not None else measured
    return (
        f"Closed form: {closed.formula} predicts {percent(closed.bubble_fraction)} "
        f"({closed.view} view); the simulation measures {measured_view}."
    )


def _more_microbatches(report: Report, explanation: Explanation) -> str:
    then = explanation.doubled_microbatches
    if then is None:
        return ""
    m = report.trace.problem.pipeline.microbatches
    now = report.summary
    memory = (
        f"peak activations stay at {activations(now.peak_activations)}"
        if then.peak_activations == now.peak_activations
        else f"peak activations go from {activations(now.peak_activations)} to "
        f"{activations(then.peak_activations)}"
    )
    return (
        f"More microbatches: with m={2 * m} instead of {m} the bubble goes "
        f"from {percent(now.bubble_fraction)} to {percent(then.bubble_fraction)} and each "
        f"microbatch costs {ms(then.makespan / (2 * m))} ms of makespan instead of "
        f"{ms(now.makespan / m)}; {memory} "
        "(and a global batch twice as large, or microbatches half the size)."
    )


def _other_policies(report: Report, explanation: Explanation) -> list[str]:
    from pipesim.studies.compare import verdict

    rows = explanation.others
    best = verdict(rows)
    if best is None or best.fastest.figures is None:
        return []
    mine = report.summary
    fastest = best.fastest.figures.summary
    lines = []
    if fastest.makespan < mine.makespan * (1 - 1e-9):
        gain = 1 - fastest.makespan / mine.makespan
        lines.append(
            f"Another schedule: {best.fastest.policy} would take {ms(fastest.makespan)} ms "
            f"({percent(gain)} less) holding {activations(fastest.peak_activations)} "
            f"activations at its peak, against {activations(mine.peak_activations)} here."
        )
    else:
        lines.append(
            f"Another schedule: none of the registered schedules beats this one's "
            f"{ms(mine.makespan)} ms on these costs."
        )
    fitting = [
        row
        for row in rows
        if row.figures is not None
        and row.figures.summary.peak_activations <= mine.peak_activations + 1e-9
        and row.figures.summary.makespan < mine.makespan * (1 - 1e-9)
    ]
    if fitting:
        pick = min(fitting, key=lambda row: row.figures.summary.makespan if row.figures else 0.0)
        assert pick.figures is not None
        lines.append(
            f"Memory trade-off: within this run's {activations(mine.peak_activations)} "
            f"activations, {pick.policy} is fastest ({ms(pick.figures.summary.makespan)} ms)."
        )
    else:
        peaks = {row.policy: row.figures.summary.peak_activations for row in rows if row.figures}
        known = ", ".join(
            f"{name} {activations(value)}"
            for name, value in peaks.items()
            if name in ("gpipe", "1f1b", "zb-h2")
        )
        lines.append(
            "Memory trade-off: no faster schedule holds fewer activations than this one "
            f"({activations(mine.peak_activations)}; {known})."
        )
    return lines


def explanation_record(report: Report, explanation: Explanation) -> dict[str, Any]:
    """`run --explain --format json`: the sentences, and the figures they word."""
    from pipesim.render.compare_table import comparison_rows

    def step(summary: Summary | None) -> dict[str, Any] | None:
        if summary is None:
            return None
        return {
            "makespan": num(summary.makespan),
            "bubble_fraction": num(summary.bubble_fraction),
            "peak_activations": peak(summary.peak_activations),
        }

    doubled = step(explanation.doubled_microbatches)
    if doubled is not None:
        doubled = {"microbatches": 2 * report.trace.problem.pipeline.microbatches, **doubled}
    return {
        "sentences": explanation_lines(report, explanation),
        "faster_links": step(explanation.faster_links),
        "doubled_microbatches": doubled,
        "other_policies": comparison_rows(explanation.others),
    }

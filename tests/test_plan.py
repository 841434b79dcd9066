"""`pipesim plan`: the best configuration is the fastest that fits, every row's flags replay to
its step time, pruning drops nothing that fits, balancing beats the even split where the output
layer makes stages uneven, and the answer is the same on one worker, two, or a Dask cluster."""

from __future__ import annotations

import gc
import json
import re
import shlex
import signal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipesim import Settings, simulate_step
from pipesim.cli import app
from pipesim.render.plan_table import plan_settings
from pipesim.settings.hardware import load_gpu, load_model
from pipesim.settings.written import as_flags
from pipesim.studies.executor import _batches, _start_worker
from pipesim.studies.plan import PlanRow, PlanSpace, plan_configurations, ranked
from tests.cli_runner import CliRunner
from tests.conftest import result_json

runner = CliRunner()
TINY = {
    "name": "tiny", "layers": 8, "hidden": 512, "ffn": 2048, "heads": 8, "kv_heads": 8,
    "vocab": 64000, "tied": False, "gated": False, "norm": "layernorm", "seq_length": 1024,
}  # fmt: skip
BASE = Settings(
    model=load_model(TINY, "test"),
    gpu=load_gpu("h100", "test"),
    global_batch_size=16,
    memory_limit=1.2e9,
)
SPACE = PlanSpace(
    pipeline=(2, 4),
    policies=("1f1b", "zb-h1", "interleaved", "zb-v"),
    chunks=(1, 2),
    micro_batch_sizes=(1, 2),
    recompute=("none", "selective", "full"),
)


@pytest.fixture(scope="module")
def rows() -> list[PlanRow]:
    return plan_configurations(BASE, SPACE)


def test_the_best_is_the_fastest_configuration_that_fits(rows: list[PlanRow]) -> None:
    fitting = [row for row in rows if row.fits]
    assert fitting and ranked(rows)[0].step_ms == min(row.step_ms or 0 for row in fitting)
    assert all(not row.fits for row in rows if row.pruned or row.error)


def test_every_row_replays_to_its_step_time_from_its_flags(rows: list[PlanRow]) -> None:
    for row in ranked(rows)[:5] + [row for row in rows if row.ran and not row.fits][:3]:
        report = simulate_step(plan_settings(BASE, row))
        assert report.summary.throughput is not None
        assert report.summary.throughput.step.step == row.step_ms


def test_pruning_never_drops_a_configuration_that_fits(rows: list[PlanRow]) -> None:
    pruned = [row for row in rows if row.pruned]
    assert pruned
    for row in pruned[:6]:
        report = simulate_step(plan_settings(BASE, row))
        assert report.summary.oom, f"{row} was pruned but fits"


def test_the_balanced_layout_is_never_slower_than_the_even_one(rows: list[PlanRow]) -> None:
    pairs: dict[tuple[object, ...], dict[str, float]] = {}
    for row in rows:
        if row.ran:
            key = (row.policy, row.stages, row.chunks, row.micro_batch_size, row.recompute)
            pairs.setdefault(key, {})[row.layout] = row.step_ms or 0.0
    compared = [times for times in pairs.values() if len(times) == 2]
    assert compared
    for times in compared:
        assert times["balanced"] <= times["even"] * (1 + 1e-9)
    # The 64000-word output layer weighs on the last stage: balancing moves layers off it.
    assert any(times["balanced"] < times["even"] for times in compared)


def test_the_answer_does_not_depend_on_the_workers(rows: list[PlanRow]) -> None:
    assert plan_configurations(BASE, SPACE, workers=2) == rows


def test_a_dask_cluster_gives_the_same_answer(rows: list[PlanRow]) -> None:
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        assert plan_configurations(BASE, SPACE, dask_scheduler=cluster.scheduler_address) == rows


def _profiled(_: int) -> bool:
    """Whether the Dask worker running this task is sampling its stack."""
    from dask.distributed import get_worker

    return bool(get_worker().periodic_callbacks["profile"].is_running())


def test_dask_workers_do_not_profile_a_study_and_profile_again_after_it() -> None:
    distributed = pytest.importorskip("dask.distributed")
    from pipesim.studies.executor import _close_clients, run_all

    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        try:
            assert (
                run_all(_profiled, range(8), dask_scheduler=cluster.scheduler_address)
                == [False] * 8
            )
        finally:
            _close_clients()
        assert all(
            worker.periodic_callbacks["profile"].is_running()
            and worker.periodic_callbacks["profile-cycle"].is_running()
            for worker in cluster.workers.values()
        )


@given(st.integers(0, 300), st.integers(1, 64))
def test_batches_hold_every_item_once_and_mix_neighbours(total: int, count: int) -> None:
    """Each item goes in one batch; batches are within one item of each other in size and take
    every so many items, so that neighbours (which cost alike) are spread over the workers."""
    batches = _batches(total, count)
    assert sorted(i for batch in batches for i in batch) == list(range(total))
    assert len(batches) == min(total, count)
    sizes = [len(batch) for batch in batches]
    assert not sizes or max(sizes) - min(sizes) <= 1
    assert all(len(batch) < 2 or batch[1] - batch[0] == len(batches) for batch in batches)


def _cli(tmp_path: Path, *more: str) -> list[str]:
    model = tmp_path / "tiny.toml"
    model.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in TINY.items() if k != "name"))
    return ["plan", "--model", str(model), "--gpu", "h100", "-p", "2,4",
            "--global-batch-size", "16", "--memory-limit", "1.2GB", *more]  # fmt: skip


def test_the_cli_prints_a_ranked_plan_whose_best_flags_replay(tmp_path: Path) -> None:
    result = runner.invoke(app, _cli(tmp_path, "--policies", "1f1b,zb-h1"), env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.stderr
    assert "fit" in result.stdout and "Pareto front" in result.stdout
    command = next(line for line in result.stdout.splitlines() if line.startswith("best: "))
    args = shlex.split(command.removeprefix("best: "))[1:]
    args = [str(tmp_path / "tiny.toml") if arg == "tiny.toml" else arg for arg in args]
    replay = runner.invoke(app, [*args, "-f", "json"])
    assert replay.exit_code == 0, replay.stderr
    records = result_json(
        runner.invoke(app, [*_cli(tmp_path, "--policies", "1f1b,zb-h1"), "-f", "json"]).stdout
    )
    best = min((r for r in records if r["fits"]), key=lambda r: r["step_ms"])
    assert result_json(replay.stdout)["step_ms"] == best["step_ms"]
    # Every record carries the command that reproduces it.
    for record in [r for r in records if r["step_ms"] is not None][:4]:
        args = shlex.split(record["command"])[1:]
        args = [str(tmp_path / "tiny.toml") if arg == "tiny.toml" else arg for arg in args]
        again = result_json(runner.invoke(app, [*args, "-f", "json"]).stdout)
        assert again["step_ms"] == record["step_ms"]


def test_csv_has_a_row_per_configuration(tmp_path: Path) -> None:
    result = runner.invoke(app, [*_cli(tmp_path, "--policies", "1f1b"), "-f", "csv"])
    lines = result.stdout.splitlines()
    assert lines[0].startswith("command,index,policy,stages,chunks")
    assert len(lines) == 1 + 2 * 3 * 3 * 2  # p x b x recompute x layout


@pytest.mark.parametrize(
    ("more", "words"),
    [
        (["--micro-batch-sizes", "3,5"], "for none of the micro-batch sizes 3, 5"),
        (["--memory-limit", "0.01GB"], "none fits"),
        (
            ["--dask-scheduler", "tcp://127.0.0.1:1"],
            "cannot reach the Dask scheduler at tcp://127.0.0.1:1",
        ),
        (["-p", "16"], "fill none of p*v"),
    ],
)
def test_bad_plans_are_one_line(tmp_path: Path, more: list[str], words: str) -> None:
    args = _cli(tmp_path, "--policies", "1f1b", *more)
    if "-p" in more:
        args = [
            a for i, a in enumerate(args) if not (a == "2,4" or (a == "-p" and i < len(args) - 2))
        ]
    result = runner.invoke(app, args)
    if words == "none fits":
        assert result.exit_code == 0 and "none fits" in result.stdout
        assert "over the memory limit by" in " ".join(result.stdout.split())
        return
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and words in result.stderr


def test_flags_round_trip_through_the_declarations() -> None:
    settings = BASE.replace(
        policy="zb-v", stages=4, recompute="full", layers_per_stage=(2, 2, 2, 2)
    )
    assert "--memory-limit" in as_flags(settings)


@pytest.mark.parametrize(
    "args",
    [
        ["compare", "-p", "4", "-m", "8", "--comm-latency", "0.1", "-f", "json"],
        ["sweep", "-m", "4,8,16", "--policies", "1f1b,zb-v", "-f", "json"],
    ],
)
def test_compare_and_sweep_give_the_same_bytes_on_any_number_of_workers(args: list[str]) -> None:
    one = runner.invoke(app, [*args, "--workers", "1"])
    two = runner.invoke(app, [*args, "--workers", "2"])
    assert one.exit_code == two.exit_code == 0
    assert one.stdout == two.stdout and result_json(one.stdout)


def test_plot_draws_the_plan_and_refuses_other_files(tmp_path: Path) -> None:
    picture = tmp_path / "plan.png"
    result = runner.invoke(app, [*_cli(tmp_path, "--policies", "1f1b"), "--plot", str(picture)])
    assert result.exit_code == 0, result.stderr
    assert picture.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    vector = tmp_path / "plan.svg"
    drawings = []
    for _ in range(2):  # no date, no random ids inside: the same inputs give the same file
        runner.invoke(app, [*_cli(tmp_path, "--policies", "1f1b"), "--plot", str(vector)])
        drawings.append(vector.read_bytes())
    assert drawings[0] == drawings[1] and b"<svg" in drawings[0]
    # Log axes (a cluster's configurations span orders of magnitude), the best one marked
    # with its figures, and the limit named.
    svg = drawings[0].decode()
    records = result_json(
        runner.invoke(app, [*_cli(tmp_path, "--policies", "1f1b"), "-f", "json"]).stdout
    )
    best = min((r for r in records if r["fits"]), key=lambda r: (r["step_ms"], r["peak_bytes"]))
    assert "log scale" in svg and "limit 1.2 GB" in svg
    assert f"best: {best['step_ms']:.3g} ms, {best['peak_bytes'] / 1e9:.3g} GB" in svg
    bad = runner.invoke(app, [*_cli(tmp_path, "--policies", "1f1b"), "--plot", "x.gif"])
    assert bad.exit_code == 2 and "must end in .png, .svg, .pdf" in bad.stderr


def test_plot_without_matplotlib_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    result = runner.invoke(app, [*_cli(tmp_path), "--plot", str(tmp_path / "p.png")])
    assert result.exit_code == 2
    assert result.stderr == "pipesim: error: --plot needs matplotlib: pip install 'pipesim[plot]'\n"


def test_brute_force_over_the_space_finds_nothing_faster_that_fits(rows: list[PlanRow]) -> None:
    # Every configuration of the space simulated on its own, with `pipesim run`'s code path:
    # none that fits beats the plan's best, and the plan's verdict on fitting is the run's.
    best = ranked(rows)[0]
    for row in rows:
        if row.error is not None:
            continue
        report = simulate_step(plan_settings(BASE, row))
        fits = not report.summary.oom
        assert fits == row.fits, row
        if fits:
            assert report.summary.throughput is not None
            assert report.summary.throughput.step.step >= (best.step_ms or 0)


def test_run_and_compare_plot_true_time_timelines(tmp_path: Path) -> None:
    picture = tmp_path / "run.svg"
    args = ["run", "--policy", "gpipe", "-p", "2", "-m", "2", "--plot", str(picture)]
    assert runner.invoke(app, args).exit_code == 0
    svg = picture.read_text()
    # A person sees the two devices, the title with the flags that reproduce it, and each of
    # the eight ops' microbatch numbers (gpipe p=2 m=2: F0 F1 B0 B1 on each device).
    assert "dev 0" in svg and "dev 1" in svg
    assert "gpipe, v=1: --stages 2 --microbatches 2 (defaults: F=1 B=2 ms)" in svg
    labels = re.findall(r">([0-9])</text>", svg)
    assert labels.count("0") >= 4 and labels.count("1") >= 4  # (the time axis adds at most one)
    both = tmp_path / "compare.png"
    result = runner.invoke(
        app, ["compare", "-p", "4", "-m", "8", "--policies", "1f1b,zb-v", "--plot", str(both)]
    )
    assert result.exit_code == 0, result.stderr
    assert both.read_bytes().startswith(b"\x89PNG")


def test_compare_with_runs_plots_each_policys_step_times(tmp_path: Path) -> None:
    # It once wrote nothing at all, and said nothing.
    picture = tmp_path / "runs.svg"
    args = ["compare", "-p", "4", "-m", "8", "--policies", "1f1b,zb-v", "--runs", "20"]
    args += ["--jitter", "0.1", "--plot", str(picture)]
    drawings = []
    for _ in range(2):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.stderr
        drawings.append(picture.read_bytes())
    assert drawings[0] == drawings[1]
    svg = drawings[0].decode()
    assert "1f1b" in svg and "zb-v" in svg and "step time (ms)" in svg
    assert "(20 runs each)" in svg and "--jitter 0.1" in svg
    json_out = runner.invoke(app, [*args[:-2], "--format", "json"])
    p95 = {r["policy"]: r["makespan"]["p95"] for r in result_json(json_out.stdout)}
    assert f"p95 {p95['zb-v']:.4g}" in svg and f"p95 {p95['1f1b']:.4g}" in svg


def test_sweep_plots_its_curves(tmp_path: Path) -> None:
    picture = tmp_path / "sweep.svg"
    args = ["sweep", "-m", "4,8,16", "--policies", "1f1b,zb-v", "--plot", str(picture)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    svg = picture.read_text()
    assert "pipesim sweep microbatches" in svg and "1f1b" in svg and "zb-v" in svg
    assert "step time (ms)" in svg and "bubble (%)" in svg


def test_a_plan_with_jitter_says_each_configuration_is_one_draw(tmp_path: Path) -> None:
    varied = runner.invoke(app, _cli(tmp_path, "--policies", "1f1b", "--jitter", "0.1"))
    assert varied.exit_code == 0, varied.stderr
    assert "plan ranks each configuration on one draw (seed 0)" in varied.stderr
    plain = runner.invoke(app, _cli(tmp_path, "--policies", "1f1b"))
    assert "one draw" not in plain.stderr


def test_a_compare_with_jitter_and_no_runs_says_each_policy_is_one_draw() -> None:
    # A calibrated config carries the measured spread as jitter: compare without --runs
    # ranks single draws, and says so; with --runs it ranks distributions and does not.
    varied = runner.invoke(app, ["compare", "-p", "4", "-m", "8", "--jitter", "0.2"])
    assert varied.exit_code == 0, varied.stderr
    words = " ".join(varied.stderr.split())
    assert "compare ranks each policy on one draw (seed 0); --runs N gives each" in words
    for args in (["--jitter", "0.2", "--runs", "5"], []):
        other = runner.invoke(app, ["compare", "-p", "4", "-m", "8", *args])
        assert other.exit_code == 0 and "one draw" not in other.stderr


def test_plans_axes_are_the_settings_given_as_lists(tmp_path: Path) -> None:
    # -p, -v, --micro-batch-size and --recompute are the settings' own flags, taking lists
    # (the older --pipeline-parallel and --micro-batch-sizes too); a config file's one value
    # is an axis of one value.
    args = [*_cli(tmp_path, "--policies", "interleaved", "-f", "json")]
    args = [arg if arg != "-p" else "--pipeline-parallel" for arg in args]
    listed = json.loads(
        runner.invoke(app, [*args, "-v", "2", "--micro-batch-sizes", "1,2", "--recompute",
                            "full,none"]).stdout
    )  # fmt: skip
    assert listed["options"]["pipeline_parallel"] == [2, 4]
    assert listed["options"]["micro_batch_sizes"] == [1, 2]
    assert listed["options"]["recompute"] == ["full", "none"]
    assert {(row["chunks"], row["micro_batch_size"]) for row in listed["result"]} <= {
        (2, 1), (2, 2)
    }  # fmt: skip
    config = tmp_path / "axes.toml"
    config.write_text('chunks = 2\nrecompute = "selective"\nmicro_batch_size = 2\n')
    from_file = json.loads(runner.invoke(app, [*args, "--config", str(config)]).stdout)
    assert from_file["options"]["chunks"] == [2]
    assert {row["recompute"] for row in from_file["result"]} == {"selective"}
    bad = runner.invoke(app, [*args, "-v", "2,0"])
    assert bad.exit_code == 2 and "chunks must be at least 1" in bad.stderr
    missing = runner.invoke(app, ["plan", "--model", "llama3-8b", "--gpu", "h100"])
    assert missing.exit_code == 2 and "plan needs -p" in missing.stderr


def test_a_config_files_policy_and_recompute_are_the_plans_unless_flags_say_more(
    tmp_path: Path,
) -> None:
    # They were once silently ignored: plan tried every policy and recompute mode.
    config = tmp_path / "plan.toml"
    config.write_text('policy = "zb-v"\nrecompute = "selective"\n')
    args = _cli(tmp_path, "--config", str(config), "-f", "json")
    records = result_json(runner.invoke(app, args).stdout)
    assert {r["policy"] for r in records} == {"zb-v"}
    assert {r["recompute"] for r in records} == {"selective"}
    wider = result_json(runner.invoke(app, [*args, "--policies", "1f1b,zb-v"]).stdout)
    assert {r["policy"] for r in wider} == {"1f1b", "zb-v"}


def test_the_runs_plot_explains_its_marks_and_a_16_device_run_names_its_curves(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs.svg"
    args = ["compare", "-p", "4", "-m", "8", "--policies", "1f1b,zb-v", "--runs", "20"]
    assert runner.invoke(app, [*args, "--jitter", "0.1", "--plot", str(runs)]).exit_code == 0
    svg = runs.read_text()
    assert "one run" in svg and "quartiles" in svg and "extremes" in svg
    wide = tmp_path / "p16.svg"
    assert runner.invoke(app, ["run", "-p", "16", "-m", "32", "--plot", str(wide)]).exit_code == 0
    assert "dev 15" in wide.read_text()  # the memory panel's legend names every device


def test_a_pool_worker_collects_cycles_even_when_forked_during_a_pause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A program may run a study inside its own pause of the collector; a forked worker must
    not inherit the pause, or no item's cycles would ever be collected."""
    monkeypatch.setattr(signal, "signal", lambda *_: None)  # not this test process's handlers
    was = gc.isenabled()
    gc.disable()
    try:
        _start_worker()
        assert gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()

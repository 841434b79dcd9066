"""The options the commands share, derived from the one declaration of each setting.

`takes_settings` gives a command one option per setting (`pipesim.settings.declarations.SETTINGS`)
plus --config, parses what the user gave on top of the file, and calls the command with the
resulting `Settings`: a command cannot forget a setting, and a new setting needs no edit here.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_args

import typer

from pipesim.cli.app import warn
from pipesim.cli.output_files import command_reads
from pipesim.errors import ConfigError
from pipesim.render.outputs import BY_NAME as OUTPUTS_BY_NAME
from pipesim.render.outputs import Requested
from pipesim.settings.declarations import (
    BY_NAME,
    SETTINGS,
    Setting,
    Settings,
    load_settings,
    loads_code,
    with_flags,
)

INPUT_OUTPUT = "Input and output"


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


class SweepFormat(StrEnum):
    text = "text"
    json = "json"
    csv = "csv"


Format = Annotated[
    OutputFormat,
    typer.Option(
        "--format", "-f", rich_help_panel=INPUT_OUTPUT, help="text: tables and charts; json: data."
    ),
]
TableFormat = Annotated[
    SweepFormat,
    typer.Option("--format", "-f", rich_help_panel=INPUT_OUTPUT, help="text, json or csv."),
]
Schedule = Annotated[
    Path | None,
    typer.Option(
        "--schedule",
        "-s",
        rich_help_panel="Pipeline",
        help="A PyTorch compute-only schedule CSV to simulate exactly.",
    ),
]
Runs = Annotated[
    int | None,
    typer.Option(
        min=1,
        max=1_000_000,
        rich_help_panel="Variability",
        help="Simulate this many steps, each with its own draws (seeded from --seed), and "
        "show the distribution of step times.",
    ),
]
Workers = Annotated[
    int | None,
    typer.Option(
        min=1,
        max=1024,
        rich_help_panel="Pipeline",
        help="Worker processes; the output is the same for any number.",
        show_default="the CPU count",
    ),
]
DaskScheduler = Annotated[
    str | None,
    typer.Option(
        rich_help_panel="Pipeline",
        help="Run the simulations on a Dask cluster: tcp://host:8786.",
    ),
]
Yes = Annotated[
    bool,
    typer.Option(
        "--yes",
        rich_help_panel="Pipeline",
        help="Run a study even when it is estimated to take more than 10 minutes.",
    ),
]
DaskTimeout = Annotated[
    float | None,
    typer.Option(
        rich_help_panel="Pipeline",
        help="Seconds to reach the Dask scheduler, then to wait for its first worker "
        "[default: 20].",
    ),
]


@contextmanager
def patience_unless(yes: bool) -> Iterator[None]:
    """Studies estimated beyond `work.PATIENCE` are refused, unless --yes."""
    from pipesim.studies.work import PATIENCE, patience

    with patience(None if yes else PATIENCE):
        yield


def dask_cluster_given(address: str | None, timeout: float | None) -> Any:
    """The cluster of --dask-scheduler and --dask-timeout, its address checked now (a bad one
    is refused before any simulation); None without one, and a note for a lone timeout."""
    if address is None:
        if timeout is not None:
            warn("--dask-timeout changes nothing without --dask-scheduler")
        return None
    from pipesim.studies.executor import DASK_TIMEOUT, dask_cluster

    return dask_cluster(address, DASK_TIMEOUT if timeout is None else timeout)


_CONFIG = inspect.Parameter(
    "config",
    inspect.Parameter.KEYWORD_ONLY,
    default=None,
    annotation=Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            rich_help_panel=INPUT_OUTPUT,
            help="TOML file with these settings; flags override it.",
        ),
    ],
)


@dataclass(frozen=True)
class SweepAxis:
    """The one setting a sweep varies, and its values in the order given."""

    setting: str
    values: tuple[Any, ...]


def _listed(name: str, text: str | list[str] | None, configured: Any) -> tuple[Any, ...] | None:
    """A comma list's values, in order, each once; the config's one value; or None."""
    if text is None or text == []:
        return None if configured is None else (configured,)
    if isinstance(text, list):
        text = ",".join(text)
    kind = BY_NAME[name].kind
    values = tuple(kind.from_text(name, part) for part in text.split(",") if part.strip())
    if not values:
        raise ConfigError(f"{BY_NAME[name].flag}: no values in {text!r}")
    return tuple(dict.fromkeys(values))


@functools.cache
def _option(
    setting: Setting, listed: str | None, shown: str | None = None, aliases: tuple[str, ...] = ()
) -> inspect.Parameter:
    """The typer option of one setting; `listed`: it may take a comma list, and what that
    does; `shown`: this command's own words for its default; `aliases`: more flag names.
    Made once and shared by the commands that take the setting alike (typer copies an
    option's description before it changes it): seven commands take 356 options, of which 90
    differ, and making each was a tenth of start-up."""
    if shown is not None:
        setting = dataclasses.replace(setting, shown_default=shown)
    if setting.kind.metavar == "":  # an on/off switch
        annotation: Any = bool | None
        info = typer.Option(
            *setting.flags,
            metavar="",  # a switch takes no value: no "<bool>" in --help
            rich_help_panel=setting.panel,
            help=setting.help,
            show_default=setting.shown_default or False,
        )
    else:
        annotation = list[str] | None if setting.repeatable else str | None
        flags = (*(setting.flags or ("--" + setting.name.replace("_", "-"),)), *aliases)
        metavar = setting.kind.metavar
        info = typer.Option(
            *flags,
            rich_help_panel=setting.panel,
            help=setting.help + (f" {listed}" if listed else ""),
            show_default=setting.shown_default or False,
            metavar=f"{metavar}[,{metavar}...]" if listed else metavar,
        )
    return inspect.Parameter(
        setting.name,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[annotation, info],
    )


Command = TypeVar("Command", bound=Callable[..., None])


def takes_settings(
    exclude: Collection[str] = (),
    sweep: bool = False,
    defaults: dict[str, str] | None = None,
    lists: Collection[str] = (),
    aliases: dict[str, tuple[str, ...]] | None = None,
    runs_config_policy: bool | None = None,
) -> Callable[[Command], Command]:
    """Give a command every setting (but those in `exclude`) as an option, and --config.

    The command declares a `settings: Settings` parameter, and with `sweep` an `axis:
    SweepAxis` one: the sweepable setting that was given as a comma list. Settings in `lists`
    always take a comma list, handed to the command as `axes: dict[str, tuple]` (the values
    given, or the config file's one value), not in its settings. `aliases`: more flag names
    for a setting in this command. A command that declares `config: Path | None` also gets the
    file's path (to keep outputs off it). `runs_config_policy`: whether the command runs a
    config file's policy (by default, when it takes --policy), to say so before it does."""
    runs_code = "policy" not in exclude if runs_config_policy is None else runs_config_policy
    chosen = [setting for setting in SETTINGS if setting.name not in exclude]
    more = aliases or {}

    def wrap(command: Command) -> Command:
        own = [
            parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for parameter in inspect.signature(command, eval_str=True).parameters.values()
            if parameter.name not in ("settings", "axis", "axes", "config")
        ]
        wants_config = "config" in inspect.signature(command).parameters
        shown = defaults or {}
        options = [
            _option(
                setting,
                "A comma list tries each value."
                if setting.name in lists
                else "A comma list sweeps it."
                if sweep and setting.sweepable
                else None,
                shown.get(setting.name),
                more.get(setting.name, ()),
            )
            for setting in chosen
        ]

        @functools.wraps(command)
        def forward(**given: Any) -> None:
            config = given.pop("config")
            texts = {setting.name: given.pop(setting.name) for setting in chosen}
            base = load_settings(config) if config is not None else Settings()
            if runs_code and loads_code(base.policy) and texts.get("policy") is None:
                # with the other notes, once the command succeeds: a failure is one line,
                # and the error of a config's policy names it
                warn(f"{config} runs code: policy = {base.policy!r}")
            if sweep:
                axis = _axis(texts)
                given["axis"] = axis
                texts[axis.setting] = None
                base = base.replace(**{axis.setting: axis.values[0]})
            if lists:
                given["axes"] = {
                    name: _listed(name, texts.pop(name), getattr(base, name)) for name in lists
                }
                base = base.replace(**dict.fromkeys(lists))
            given["settings"] = with_flags(base, texts)
            command_reads(_files_read(config, given["settings"]))
            if wants_config:
                given["config"] = config
            command(**given)

        # --help lists panels in order of first appearance: the pipeline first, input and
        # output last.
        first = [parameter for parameter in own if _panel(parameter) != INPUT_OUTPUT]
        last = [parameter for parameter in own if _panel(parameter) == INPUT_OUTPUT]
        parameters = [*first, *options, *last, _CONFIG]
        forward.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        forward.__annotations__ = {p.name: p.annotation for p in parameters}
        del forward.__wrapped__
        return forward  # type: ignore[return-value]

    return wrap


def _files_read(config: Path | None, settings: Settings) -> list[tuple[str, Path | None]]:
    """The files a command's settings come from, which none of its outputs may replace."""
    read: list[tuple[str, Path | None]] = [("--config", config)]
    for flag, record in (("--model", settings.model), ("--gpu", settings.gpu)):
        if record is not None and record.source:
            read.append((flag, Path(record.source)))
    policy = settings.policy
    if policy is not None and ".py:" in policy:
        read.append(("the policy", Path(policy.rpartition(":")[0])))
    return read


def takes_outputs(*names: str, words: dict[str, str] | None = None) -> Callable[[Command], Command]:
    """Give a command an option per file output named (`render.outputs.OUTPUTS`), and call it
    with `outputs: Requested`, the ones the user gave; `words`: this command's own help for
    an output (what its plot draws)."""
    chosen = [OUTPUTS_BY_NAME[name] for name in names]

    def wrap(command: Command) -> Command:
        own = [
            parameter
            for parameter in inspect.signature(command, eval_str=True).parameters.values()
            if parameter.name != "outputs"
        ]
        options = [
            inspect.Parameter(
                output.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[
                    Path | None,
                    typer.Option(
                        output.flag,
                        rich_help_panel=INPUT_OUTPUT,
                        help=(words or {}).get(output.name, output.help),
                    ),
                ],
            )
            for output in chosen
        ]

        @functools.wraps(command)
        def forward(**given: Any) -> None:
            paths = {output.name: given.pop(output.name) for output in chosen}
            requested = Requested({name: path for name, path in paths.items() if path})
            command(outputs=requested, **given)

        parameters = [*own, *options]
        forward.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        forward.__annotations__ = {p.name: p.annotation for p in parameters}
        del forward.__wrapped__
        return forward  # type: ignore[return-value]

    return wrap


def _panel(parameter: inspect.Parameter) -> str | None:
    """The --help section of a typer parameter declared with `Annotated`."""
    for info in get_args(parameter.annotation)[1:]:
        panel = getattr(info, "rich_help_panel", None)
        if panel is not None:
            return str(panel)
    return None


def _axis(texts: dict[str, Any]) -> SweepAxis:
    """The one sweepable setting given as a comma list, parsed item by item (a repeatable
    flag's entries count as items: `--straggler 3:1.1,3:1.3` sweeps device 3's factor)."""
    texts = {
        name: ",".join(text) if isinstance(text, list) else text for name, text in texts.items()
    }
    lists = [
        name
        for name, text in texts.items()
        if isinstance(text, str) and BY_NAME[name].sweepable and "," in text
    ]
    if len(lists) != 1:
        given = ", ".join(BY_NAME[name].flag for name in lists) or "none"
        raise ConfigError(
            f"sweep varies exactly one setting given as a comma list (e.g. -m 1,2,4,8); got {given}"
        )
    (name,) = lists
    kind = BY_NAME[name].kind
    values = tuple(kind.from_text(name, part) for part in texts[name].split(","))
    return SweepAxis(name, values)

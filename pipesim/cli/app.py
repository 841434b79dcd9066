"""The typer application and how it fails: one line on stderr and an exit code, never a
traceback."""

from __future__ import annotations

import contextlib
import copy
import errno
import os
import signal
import sys
from collections.abc import Sequence
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup
from typer.models import CommandInfo

from pipesim.errors import PipesimError, Terminated


class _Interrupted(Exception):
    """Ctrl-C, carried past typer (which would turn it into a silent exit 130)."""


class _Terminated(Exception):
    """SIGTERM, carried past typer likewise."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


class _OneLineErrors(TyperGroup):
    """The one place errors become exit codes: a `PipesimError` or a usage error (a bad number,
    an unknown option) is one line and its code, Ctrl-C is 130, a broken standard output 1."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        def invoke() -> Any:
            return super(_OneLineErrors, self).main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )

        if not standalone_mode:
            return invoke()
        from pipesim.cli.output_files import committed_at_the_end

        global _notes
        _notes = []
        _replace_what_cannot_be_encoded()
        try:
            signal.signal(signal.SIGTERM, _raise_terminated)
            with committed_at_the_end():
                result = invoke()
        except (Terminated, _Terminated) as terminated:
            _silence_stdout()
            fail(f"terminated {terminated}".strip(), 143)
        except PipesimError as error:
            fail(str(error), error.exit_code)
        except _Interrupted as interrupt:
            _silence_stdout()
            fail(f"interrupted {interrupt}".strip(), 130)
        except KeyboardInterrupt as interrupt:
            _silence_stdout()
            fail(f"interrupted {interrupt}".strip(), 130)
        except OSError as error:
            # What escapes here is the terminal's or the pipe's, not a file's (files are
            # reported where they are written): a closed pipe ends quietly, as `head` expects;
            # a full or closed standard output is one line.
            _silence_stdout()
            if error.errno == errno.EPIPE:
                sys.exit(1)
            fail(f"cannot write the output: {error.strerror or error}", 1)
        except Exception as error:
            if type(error).__name__ == "Abort":  # click's wrapper of Ctrl-C at a prompt
                _silence_stdout()
                fail("interrupted", 130)
            # Typer vendors click privately, so its usage errors are known by their interface
            # (ClickException's format_message and exit_code), not by an importable class.
            format_message = getattr(error, "format_message", None)
            if format_message is None:
                raise
            if type(error).__name__ == "NoArgsIsHelpError":
                sys.exit(0)  # `pipesim` alone: the help it printed is the answer
            fail(format_message(), getattr(error, "exit_code", 2))
        notes, _notes = _notes, None
        for note in notes:
            print(note, file=sys.stderr)
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Terminated as terminated:
            raise _Terminated(str(terminated)) from None
        except KeyboardInterrupt as interrupt:
            raise _Interrupted(str(interrupt)) from None


def _replace_what_cannot_be_encoded() -> None:
    """On an output that takes only ASCII (or Latin-1), a glyph it cannot encode becomes '?'
    rather than a UnicodeEncodeError; the chart spells its own glyphs in ASCII there."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        reconfigure = getattr(stream, "reconfigure", None)
        if not encoding.startswith("utf") and reconfigure is not None:
            with contextlib.suppress(OSError, ValueError):
                reconfigure(errors="replace")


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that flushing it at exit cannot fail again and
    print a traceback after our one line."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


_notes: list[str] | None = None
"""The notes of the command running, said once it succeeds: a command that fails says one
line, its error, and nothing else."""


def warn(message: str, now: bool = False) -> None:
    """One line on stderr about something the user gave that had no effect, or should know:
    when the command has succeeded, or at once (`now`) when it must be read before what
    follows happens."""
    line = f"pipesim: note: {one_line(message)}"
    if _notes is None or now:
        print(line, file=sys.stderr)
    else:
        _notes.append(line)


def fail(message: str, code: int) -> NoReturn:
    print(f"pipesim: error: {one_line(message)}", file=sys.stderr)
    sys.exit(code)


def one_line(message: str) -> str:
    """`message` with control characters (a newline in a file name, say) shown as escapes, so
    that an error is always exactly one line."""
    return "".join(
        char if char.isprintable() or char == " " else char.encode("unicode_escape").decode()
        for char in message
    )


app = typer.Typer(
    cls=_OneLineErrors,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    help="Simulate pipeline-parallel training schedules: timelines, bubbles and memory.",
)


def for_arguments(args: Sequence[str]) -> typer.Typer:
    """The application with only the command that `args` start with, when they start with a
    command's name: typer builds every command's options before it parses any (36-50 ms of a
    0.3 s run, for ten commands of about fifty options each), and parsing a command needs only
    its own. The list of commands (`pipesim`, `pipesim --help`) needs only their names and
    help: it gets stand-ins that have no options. Anything else (--version, a misspelt name
    that should be told the names it is near) gets every command."""
    from typer.main import get_command_name

    if all(arg in ("--help", "-h") for arg in args):
        listed = copy.copy(app)
        listed.registered_commands = [_listed(command) for command in app.registered_commands]
        return listed
    chosen = [
        command
        for command in app.registered_commands
        if (command.name or get_command_name(getattr(command.callback, "__name__", ""))) == args[0]
    ]
    if len(chosen) != 1:
        return app
    narrowed = copy.copy(app)
    narrowed.registered_commands = chosen
    return narrowed


def _listed(command: CommandInfo) -> CommandInfo:
    """`command` as the list of commands shows it: its name and help, and no options (a
    function without parameters, named and documented as its own)."""
    callback = command.callback
    assert callback is not None

    def stand_in() -> None:
        raise AssertionError("a listed command is shown, never run")

    stand_in.__name__, stand_in.__qualname__ = callback.__name__, callback.__qualname__
    stand_in.__doc__ = callback.__doc__
    listed = copy.copy(command)
    listed.callback = stand_in
    return listed


def _show_version(value: bool) -> None:
    if value:
        print(f"pipesim {_version()}")
        raise typer.Exit(0)


def _version() -> str:
    from importlib import metadata  # 20 ms of start-up, for --version alone

    try:
        return metadata.version("pipesim")
    except metadata.PackageNotFoundError:
        return "(not installed)"


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            metavar="",
            callback=_show_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Simulate pipeline-parallel training schedules: timelines, bubbles and memory."""

"""The `CliRunner` the tests invoke pipesim with: its command line built as `pipesim` builds
it (`cli.app.for_arguments`: only the command named, when one is), so that a test pays for
one command's options rather than every command's, about 40 ms an invocation over a thousand
invocations a run. `test_cli` holds a command built alone to the same help and errors as with
every command built."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

import typer
import typer.testing

from pipesim.cli import app as pipesim_app
from pipesim.cli.app import for_arguments


class CliRunner(typer.testing.CliRunner):
    def invoke(  # type: ignore[override]
        self, app: typer.Typer, args: str | Sequence[str] | None = None, **kwargs: Any
    ) -> typer.testing.Result:
        if app is pipesim_app and args is not None:
            words = shlex.split(args) if isinstance(args, str) else [str(arg) for arg in args]
            app = for_arguments(words)
        return super().invoke(app, args, **kwargs)

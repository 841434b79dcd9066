"""The `pipesim` command: parse, build the problem, call the library, render.

Every error a user can cause surfaces as one line on stderr and exit code 2 (1 for a schedule
that can never finish); nothing here computes a figure.
"""

import sys

from pipesim.cli import measured, simulate, study  # noqa: F401  (importing registers the commands)
from pipesim.cli.app import app, for_arguments


def main() -> None:
    """Console-script entry point."""
    if sys.stdout is None:  # started with standard output closed (`>&-`)
        print("pipesim: error: standard output is closed", file=sys.stderr)
        sys.exit(1)
    for_arguments(sys.argv[1:])()


__all__ = ["app", "main"]

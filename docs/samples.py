"""The README's sample outputs, made by the tool itself so that they cannot drift.

A code block in README.md preceded by a line

    <!-- sample: ARGS -->

holds what `pipesim ARGS` prints at 80 columns through a pipe (no colour); `<!-- sample: $
ARGS -->` also shows the command as its first line (`$ pipesim ARGS`), and `| head N` after
the arguments keeps the first N lines.

    python docs/samples.py --check   # exit 1, naming the sample, when one differs
    python docs/samples.py --write   # rewrite them from the tool's output

`tests/test_readme_samples.py` runs the check in the test suite, so CI fails on a stale one.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
_MARK = re.compile(r"^<!-- sample: (.*?) -->$")


def samples(text: str) -> list[tuple[int, int, str]]:
    """(first line of the block's content, line after its end, the marker's arguments) for
    each marked block, 0-based line numbers."""
    lines = text.split("\n")
    found = []
    for number, line in enumerate(lines):
        mark = _MARK.match(line)
        if mark is None:
            continue
        if number + 1 >= len(lines) or not lines[number + 1].startswith("```"):
            raise SystemExit(f"README.md:{number + 1}: a sample mark must precede a code block")
        end = next(i for i in range(number + 2, len(lines)) if lines[i].startswith("```"))
        found.append((number + 2, end, mark[1]))
    return found


def output(arguments: str) -> str:
    """What `pipesim ARGS` prints for a sample (without its trailing newline)."""
    prompt = arguments.startswith("$ ")
    arguments = arguments.removeprefix("$ ")
    head = None
    if " | head " in arguments:
        arguments, count = arguments.rsplit(" | head ", 1)
        head = int(count)
    environment = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1", "TERM": "dumb"}
    done = subprocess.run(
        [sys.executable, "-m", "pipesim", *shlex.split(arguments)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=README.parent,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"pipesim {arguments}: exit {done.returncode}: {done.stderr.strip()}")
    lines = done.stdout.rstrip("\n").split("\n")
    if head is not None:
        lines = lines[:head]
    lines = [line.rstrip() for line in lines]
    if prompt:
        lines = [f"$ pipesim {arguments}", *lines]
    return "\n".join(lines)


def stale(text: str) -> list[str]:
    """The arguments of every sample whose block differs from the tool's output."""
    lines = text.split("\n")
    return [
        arguments
        for first, end, arguments in samples(text)
        if "\n".join(line.rstrip() for line in lines[first:end]) != output(arguments)
    ]


def rewritten(text: str) -> str:
    lines = text.split("\n")
    for first, end, arguments in reversed(samples(text)):
        lines[first:end] = output(arguments).split("\n")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true")
    action.add_argument("--write", action="store_true")
    text = README.read_text()
    if parser.parse_args().write:
        README.write_text(rewritten(text))
        return
    differing = stale(text)
    for arguments in differing:
        shown = arguments.removeprefix("$ ")
        print(f"README.md: the sample of `pipesim {shown}` is stale", file=sys.stderr)
    sys.exit(1 if differing else 0)


if __name__ == "__main__":
    main()

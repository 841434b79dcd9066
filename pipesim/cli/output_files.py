"""Files a command writes: checked before any simulation, written whole or not at all.

Each output is rendered into a temporary file beside its destination and renamed into place
only once every output of the command is complete, so a failure (a full disk, a file size
limit, Ctrl-C, an error in a later output) leaves every file the user had exactly as it was,
and no partial file behind.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from pipesim.errors import ConfigError

Writer = Callable[[TextIO], None]


Named = tuple[str, Path | None]
"""A path and what the user called it: a flag (--trace) or a role (the schedule)."""


def check_outputs(outputs: Sequence[Named], inputs: Sequence[Named] = ()) -> None:
    """Refuse, up front, an output that cannot be written or that would overwrite an input or
    another output of the same command."""
    seen: dict[str, str] = {}
    for name, path in inputs:
        if path is not None:
            seen[_identity(path)] = f"{name} {path}"
    for name, path in outputs:
        if path is None:
            continue
        identity = _identity(path)
        if identity in seen:
            raise ConfigError(f"{name} {path} would overwrite {seen[identity]}")
        seen[identity] = f"{name} {path}"
        if path.is_dir():
            raise ConfigError(f"cannot write {path}: it is a directory")
        folder = path.parent
        if not folder.is_dir():
            raise ConfigError(f"cannot write {path}: no directory {folder}")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"cannot write {path}: {folder} is not writable")


def _identity(path: Path) -> str:
    """The same file under any spelling (relative, with .., through a symlink)."""
    return os.path.realpath(path)


_staged: list[tuple[str, Path]] | None = None
"""The command's files, rendered and waiting to be renamed into place, while the CLI runs it
(`committed_at_the_end`); None when they are written at once."""


def write_files(outputs: Sequence[tuple[Path, Writer | bytes]]) -> None:
    """Write each (path, writer or bytes) to a temporary file beside it; rename them all into
    place now, or, inside `committed_at_the_end`, once the command has succeeded. On any
    failure (or Ctrl-C) remove the temporary files and touch nothing else."""
    written: list[tuple[str, Path]] = []
    try:
        for path, writer in outputs:
            written.append((_write_temporary(path, writer), path))
    except BaseException as error:
        _remove(written)
        if isinstance(error, OSError):
            raise ConfigError(f"cannot write {path}: {error.strerror or error}") from None
        raise
    if _staged is not None:
        _staged.extend(written)
    else:
        _rename(written)


@contextmanager
def committed_at_the_end() -> Iterator[None]:
    """Run a command whose files are renamed into place only once it has succeeded and its
    standard output is out (flushed): a failure, a full or closed standard output or a signal
    at any point leaves every file the user had as it was, and no temporary behind."""
    global _staged
    _staged = []
    try:
        yield
        sys.stdout.flush()
        _rename(_staged)
    finally:
        staged, _staged = _staged, None
        _remove(staged)


def commit_now() -> None:
    """Put the files written so far in place before the command goes on to fail on purpose
    (--fail-on-oom reports a verdict on files the user asked for)."""
    if _staged:
        sys.stdout.flush()
        _rename(_staged)
        _staged.clear()


def _rename(written: list[tuple[str, Path]]) -> None:
    try:
        for temporary, path in written:
            os.replace(temporary, path)
    except OSError as error:
        _remove(written)
        raise ConfigError(f"cannot write {path}: {error.strerror or error}") from None


def _remove(written: list[tuple[str, Path]]) -> None:
    for temporary, _ in written:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _write_temporary(path: Path, writer: Writer | bytes) -> str:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, _mode(path))
        if isinstance(writer, bytes):
            with os.fdopen(handle, "wb") as raw:
                raw.write(writer)
        else:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
                writer(out)
    except BaseException:
        os.unlink(temporary)
        raise
    return temporary


def _mode(path: Path) -> int:
    """The permissions the file has now, or those a new file gets (mkstemp's are 0600)."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def print_json(record: Any) -> None:
    """A command's JSON answer on standard output: indented, no NaN, one final newline."""
    json.dump(record, sys.stdout, indent=1, allow_nan=False)
    sys.stdout.write("\n")

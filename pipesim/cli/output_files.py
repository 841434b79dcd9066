"""Files a command writes: checked before any simulation, written whole or not at all.

Each output is rendered into a temporary file beside its destination and renamed into place
only once the command has succeeded, so a failure (a full disk, a file size limit, Ctrl-C, an
error in a later output) leaves every file the user had exactly as it was, and no partial
file behind. A symlink is written through (its target is replaced, the link stays); a special
file (a device such as /dev/null, a FIFO) is written directly, since renaming over it would
replace it with a regular file. No output may be any file the command reads.
"""

from __future__ import annotations

import errno
import io
import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from pipesim.errors import ConfigError

Writer = Callable[[TextIO], None]


Named = tuple[str, Path | None]
"""A path and what the user called it: a flag (--trace) or a role (the schedule)."""

_inputs: list[Named] = []
"""Every file the running command reads that `takes_settings` knows of (the config, the
model's and the GPU's files, a policy's module), kept off its outputs by `check_outputs`."""


def command_reads(inputs: Sequence[Named]) -> None:
    """Say which files the running command reads, for every later `check_outputs`."""
    _inputs.extend(inputs)


def check_outputs(outputs: Sequence[Named], inputs: Sequence[Named] = ()) -> None:
    """Refuse, up front, an output that cannot be written or that would overwrite an input or
    another output of the same command."""
    seen: dict[str, str] = {}
    for name, path in [*_inputs, *inputs]:
        if path is not None:
            seen.setdefault(_identity(path), f"{name} {path}")
    for name, path in outputs:
        if path is None:
            continue
        try:
            identity = _identity(path)
        except OSError as error:
            raise ConfigError(f"cannot write {path}: {error.strerror or error}") from None
        if identity in seen:
            raise ConfigError(f"{name} {path} would overwrite {seen[identity]}")
        seen[identity] = f"{name} {path}"
        try:
            _check_writable(path)
        except OSError as error:  # a path longer than the system allows, a loop of links
            raise ConfigError(f"cannot write {path}: {error.strerror or error}") from None


def _check_writable(path: Path) -> None:
    try:
        os.stat(path)  # a loop of symlinks is refused here, not replaced by a file
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise
    target = Path(_identity(path))
    folder = target.parent
    if not folder.is_dir():
        raise ConfigError(f"cannot write {path}: no directory {path.parent}")
    longest = _limit(folder, "PC_NAME_MAX", 255)
    if len(target.name.encode("utf-8", "surrogateescape")) > longest:
        raise ConfigError(
            f"cannot write {path}: its name is longer than the file system allows ({longest} bytes)"
        )
    if target.is_dir():
        raise ConfigError(f"cannot write {path}: it is a directory")
    if _special(target):
        if not os.access(target, os.W_OK):
            raise ConfigError(f"cannot write {path}: permission denied")
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {path}: {folder} is not writable")


def _limit(folder: Path, name: str, default: int) -> int:
    try:
        return os.pathconf(folder, name)
    except (OSError, ValueError):
        return default


def _identity(path: Path) -> str:
    """The same file under any spelling (relative, with .., through a symlink)."""
    return os.path.realpath(path)


def _special(path: Path) -> bool:
    """An existing file that is not a regular one: a device, a FIFO, a socket."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


class _Pending(NamedTuple):
    """An output rendered and waiting: in a temporary file beside its destination, or for a
    special file in memory (`data`)."""

    destination: Path
    temporary: str | None
    data: bytes | None
    shown: Path
    """The path as the user gave it, for messages."""


_staged: list[_Pending] | None = None
"""The command's files, rendered and waiting to be put in place, while the CLI runs it
(`committed_at_the_end`); None when they are written at once."""


def write_files(outputs: Sequence[tuple[Path, Writer | bytes]]) -> None:
    """Render each (path, writer or bytes) to a temporary file beside it; put them all in
    place now, or, inside `committed_at_the_end`, once the command has succeeded. On any
    failure (or Ctrl-C) remove the temporary files and touch nothing else."""
    written: list[_Pending] = []
    try:
        for path, writer in outputs:
            written.append(_render(path, writer))
    except BaseException as error:
        _remove(written)
        if isinstance(error, OSError):
            raise ConfigError(f"cannot write {path}: {error.strerror or error}") from None
        raise
    if _staged is not None:
        _staged.extend(written)
    else:
        _put_in_place(written)


@contextmanager
def committed_at_the_end() -> Iterator[None]:
    """Run a command whose files are put in place only once it has succeeded and its
    standard output is out (flushed): a failure, a full or closed standard output or a signal
    at any point leaves every file the user had as it was, and no temporary behind."""
    global _staged
    _staged = []
    _inputs.clear()
    try:
        yield
        sys.stdout.flush()
        _put_in_place(_staged)
    finally:
        staged, _staged = _staged, None
        _inputs.clear()
        _remove(staged)


def commit_now() -> None:
    """Put the files written so far in place before the command goes on to fail on purpose
    (--fail-on-oom reports a verdict on files the user asked for)."""
    if _staged:
        sys.stdout.flush()
        _put_in_place(_staged)
        _staged.clear()


def _put_in_place(written: list[_Pending]) -> None:
    try:
        for pending in written:
            shown = pending.shown
            if pending.temporary is not None:
                os.replace(pending.temporary, pending.destination)
            else:
                with open(pending.destination, "wb") as special:
                    special.write(pending.data or b"")
    except OSError as error:
        _remove(written)
        raise ConfigError(f"cannot write {shown}: {error.strerror or error}") from None


def _remove(written: list[_Pending]) -> None:
    for pending in written:
        if pending.temporary is not None and os.path.exists(pending.temporary):
            os.unlink(pending.temporary)


def _render(path: Path, writer: Writer | bytes) -> _Pending:
    destination = Path(_identity(path))  # through a symlink, to its target
    if _special(destination):
        if isinstance(writer, bytes):
            return _Pending(destination, None, writer, path)
        text = io.StringIO(newline="")
        writer(text)
        return _Pending(destination, None, text.getvalue().encode("utf-8"), path)
    # a short prefix: the temporary's name must fit where the destination's just does
    prefix = f".{destination.name[:40]}."
    handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=prefix, suffix=".tmp")
    try:
        os.chmod(temporary, _mode(destination))
        if isinstance(writer, bytes):
            with os.fdopen(handle, "wb") as raw:
                raw.write(writer)
        else:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
                writer(out)
    except BaseException:
        os.unlink(temporary)
        raise
    return _Pending(destination, temporary, None, path)


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

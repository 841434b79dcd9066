"""Reading a user's text file: bounded before it is read, decoded strictly, one line if not.

Every file pipesim reads (a TOML config, a schedule CSV) comes through `read_text`, so that
/dev/zero, a binary, a Latin-1 or UTF-16 file, or a file far larger than any real config is
one clear error instead of a hang, a memory blow-up or a traceback.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pipesim.errors import ConfigError

CONFIG_LIMIT = 1 << 20
"""The largest TOML config read (1 MiB): a real one is a few hundred bytes."""
SCHEDULE_LIMIT = 256 << 20
"""The largest schedule CSV read (256 MiB): tens of millions of cells."""
_CHUNK = 1 << 20


def read_text(path: Path, what: str, limit: int) -> str:
    """The text of `path`, a `what` ("config", "schedule"), at most `limit` bytes, as UTF-8
    (a leading byte-order mark is accepted and dropped)."""
    chunks: list[bytes] = []
    size = 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                # NUL bytes mark a binary (or /dev/zero): refuse at the first chunk that has one.
                if b"\0" in chunk:
                    raise ConfigError(f"{path} is not a text file (it contains NUL bytes)")
                size += len(chunk)
                if size > limit:
                    raise ConfigError(
                        f"{path} is larger than {limit >> 20} MiB, more than any {what} file needs"
                    )
                chunks.append(chunk)
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror or error}") from None
    data = b"".join(chunks)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {error.start + 1} is {data[error.start]:#04x}); "
            f"save the {what} as UTF-8"
        ) from None


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The table of a TOML file (`read_text`'s bounds for a config), or one line saying why
    it is not one."""
    text = read_text(path, what, CONFIG_LIMIT)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    except RecursionError:
        raise ConfigError(f"{path} nests arrays or tables too deeply") from None

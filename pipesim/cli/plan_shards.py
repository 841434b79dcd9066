"""`pipesim plan --merge FILE...`: the shards of one plan (`--shard I/N`), read back and ranked
as the whole plan would rank them (`studies.plan.merged`).

The files must be the N parts of one search: the same settings and options but the shard,
each part once. Anything else is one line naming the file and what differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipesim.errors import ConfigError
from pipesim.render.plan_table import row_from_record
from pipesim.settings.declarations import Settings, settings_from_mapping
from pipesim.settings.text_input import read_text
from pipesim.studies.plan import COUNTS, PlanResult, merged

SHARD_LIMIT = 1 << 30
"""Bytes of one shard file read at most (a million rows is about 1 GB of JSON)."""


@dataclass(frozen=True)
class MergedPlan:
    settings: Settings
    result: PlanResult
    options: dict[str, Any]


def read_shards(files: list[Path], merge: bool, top: int | None, given: list[str]) -> MergedPlan:
    """The plan the shard files make together.

    Raises:
        ConfigError: files without --merge or --merge without files, other options given,
            a file that is not a shard's JSON, shards of different plans, a part missing or
            given twice.
    """
    if not merge:
        raise ConfigError("files are for --merge: pipesim plan --merge SHARD.json...")
    if not files:
        raise ConfigError("--merge needs the shards' files: pipesim plan --merge a.json b.json")
    if given:
        raise ConfigError(
            f"--merge takes its settings and options from the shards; leave out {given[0]}"
        )
    shards = [_read(path) for path in files]
    first = shards[0][1]
    seen: dict[int, Path] = {}
    parts = 0
    for path, envelope in shards:
        for key in ("settings", "options"):
            if _without_shard(envelope[key]) != _without_shard(first[key]):
                raise ConfigError(f"{path}: its {key} differ from {files[0]}'s: not one plan")
        part, _, count = str(envelope["options"]["shard"]).partition("/")
        number, parts = int(part), int(count)
        if number in seen:
            raise ConfigError(f"{path}: part {number}/{parts} again (also {seen[number]})")
        seen[number] = path
    missing = sorted(set(range(1, parts + 1)) - set(seen))
    if missing:
        raise ConfigError(f"--merge: part {missing[0]}/{parts} of the plan is missing")
    options = dict(first["options"])
    if top is not None and top != options["top"]:
        raise ConfigError(
            f"the shards ranked their top {options['top']}; --top must match or be left out"
        )
    try:
        results = [
            PlanResult(
                tuple(row_from_record(record) for record in envelope["result"]),
                int(envelope["options"]["duplicates"]),
            )
            for _, envelope in shards
        ]
        settings = settings_from_mapping(first["settings"], str(files[0]), Settings())
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ConfigError(f"--merge: a row is not one plan --shard wrote ({error})") from None
    result = merged(results, options["top"], bool(options["exhaustive"]))
    options.update(
        shard=None,
        counts={name: result.count(name) for name in COUNTS},
        duplicates=result.duplicates,
    )
    return MergedPlan(settings, result, options)


def _read(path: Path) -> tuple[Path, dict[str, Any]]:
    text = read_text(path, "shard", SHARD_LIMIT)
    try:
        envelope = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not JSON ({error.msg}, line {error.lineno})") from None
    if (
        not isinstance(envelope, dict)
        or envelope.get("command") != "plan"
        or not isinstance(envelope.get("options"), dict)
        or not envelope["options"].get("shard")
        or not isinstance(envelope.get("result"), list)
        or not isinstance(envelope.get("settings"), dict)
    ):
        raise ConfigError(f"{path}: not the JSON of `pipesim plan --shard I/N`")
    return path, envelope


def _without_shard(mapping: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value for key, value in mapping.items() if key not in ("shard", "counts", "duplicates")
    }

"""The tree is the data flow: settings -> problem -> schedules -> simulator -> analysis ->
studies -> render -> cli. A module imports only from its own stage or the stages before it,
never from a later one. This list is the one statement of that rule."""

from __future__ import annotations

import ast
from pathlib import Path

LAYERS = [
    "errors",
    "settings",
    "problem",
    "schedules",
    "simulator",
    "analysis",
    "studies",
    "render",
    "cli",
]
"""The stages of the flow, in order; `pipesim/__init__.py` (the public API) may import any."""

ROOT = Path(__file__).resolve().parent.parent / "pipesim"


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "pipesim" else None


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return found


def test_every_module_belongs_to_a_stage() -> None:
    rooms = {path.stem if path.is_file() else path.name for path in ROOT.iterdir()}
    rooms -= {"__init__", "__main__", "__pycache__"}
    assert rooms == set(LAYERS)


def test_no_import_runs_from_a_later_stage_to_an_earlier_one() -> None:
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative in (Path("__init__.py"), Path("__main__.py")):
            continue
        here = LAYERS.index(relative.parts[0].removesuffix(".py"))
        for module in _imports(path):
            stage = _stage(module)
            if stage is not None and LAYERS.index(stage) > here:
                wrong.append(f"{relative} imports {module}")
    assert wrong == []


def test_the_tree_has_no_more_than_two_floors() -> None:
    deepest = max(len(path.relative_to(ROOT).parts) for path in ROOT.rglob("*.py"))
    assert deepest <= 2

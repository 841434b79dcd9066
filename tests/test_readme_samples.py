"""The README's sample outputs are the tool's own: each marked block equals what its command
prints at 80 columns through a pipe (`docs/samples.py`; `--write` refreshes them)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "samples", Path(__file__).resolve().parent.parent / "docs" / "samples.py"
)
assert _SPEC is not None and _SPEC.loader is not None
samples = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(samples)


_README = samples.README.read_text()
_MARKED = samples.samples(_README)


def test_the_readme_marks_its_samples() -> None:
    assert len(_MARKED) >= 4


@pytest.mark.slow
@pytest.mark.parametrize(("first", "end", "arguments"), _MARKED, ids=[m[2] for m in _MARKED])
def test_each_readme_sample_is_what_the_tool_prints(first: int, end: int, arguments: str) -> None:
    """One test per sample, so that the slow ones (a plan, a Monte Carlo) run side by side."""
    block = "\n".join(line.rstrip() for line in _README.split("\n")[first:end])
    assert block == samples.output(arguments), f"python docs/samples.py --write ({arguments})"


def test_a_sample_that_drifted_is_named() -> None:
    text = "<!-- sample: run -p 2 -m 2 -->\n```\nnot what it prints\n```\n"
    assert samples.stale(text) == ["run -p 2 -m 2"]
    fixed = samples.rewritten(text)
    assert samples.stale(fixed) == [] and fixed.startswith("<!-- sample: run -p 2 -m 2 -->\n```\n")

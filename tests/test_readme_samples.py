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


@pytest.mark.slow
def test_every_readme_sample_is_what_the_tool_prints() -> None:
    text = samples.README.read_text()
    assert len(samples.samples(text)) >= 4
    assert samples.stale(text) == []


def test_a_sample_that_drifted_is_named() -> None:
    text = "<!-- sample: run -p 2 -m 2 -->\n```\nnot what it prints\n```\n"
    assert samples.stale(text) == ["run -p 2 -m 2"]
    fixed = samples.rewritten(text)
    assert samples.stale(fixed) == [] and fixed.startswith("<!-- sample: run -p 2 -m 2 -->\n```\n")

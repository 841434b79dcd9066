"""Shared helpers: build and simulate a problem from settings in one call."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from pipesim import Kind, Op, Report, Settings, StaticPolicy, simulate_step
from pipesim.problem.pipeline import Pipeline

# CI draws 60 examples per property; a developer's run, 25 (pytest --slow draws 60 too).
settings.register_profile(
    "ci", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow", action="store_true", help="Run the tests marked slow too, as CI does."
    )


def pytest_configure(config: pytest.Config) -> None:
    if not (os.environ.get("CI") or config.getoption("--slow")):
        settings.load_profile("dev")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow tests (torch, transformers, Chromium, fuzzing, proven optima) run in CI (`CI`
    set, as `.ci/run` sets it), with --slow, or when -m picks tests by marker; a developer's
    plain `pytest` skips them, and says how to run them."""
    if os.environ.get("CI") or config.getoption("--slow") or config.getoption("markexpr"):
        return
    skip = pytest.mark.skip(reason="slow: pytest --slow (or CI=1) runs it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def simulate_settings(**kwargs: object) -> Report:
    """Run `Settings(**kwargs)`; cost values may be given as plain numbers."""
    for key in ("forward", "backward", "weight"):
        value = kwargs.get(key)
        if isinstance(value, int | float):
            kwargs[key] = (float(value),)
        elif isinstance(value, list):
            kwargs[key] = tuple(float(v) for v in value)
    return simulate_step(Settings(**kwargs))  # type: ignore[arg-type]


class FixedOrders(StaticPolicy):
    """A policy that runs exactly the per-device orders it was given."""

    name = "fixed"
    summary = "test policy"

    def __init__(self, orders: list[list[Op]], split_backward: bool = False) -> None:
        self.orders = orders
        self.split_backward = split_backward

    def device_orders(self, pipeline: Pipeline) -> list[list[Op]]:
        return self.orders


def F(stage: int, mb: int) -> Op:
    return Op(Kind.F, stage, mb)


def B(stage: int, mb: int) -> Op:
    return Op(Kind.B, stage, mb)


def op_orders(settings: Settings) -> list[list[Op]]:
    """Each device's ops in the order it ran them, for a schedule that runs one op a step
    (none fused), as the tests that hold orders to a framework's compare them."""
    orders = simulate_step(settings).trace.steps_by_device()
    ops = [[step for step in order if isinstance(step, Op)] for order in orders]
    assert ops == [list(order) for order in orders]  # one op a step, none fused
    return ops


def need(module: str) -> Any:
    """`module`, imported; skipped locally where it is not installed, but never in CI
    (`.ci/run` installs it and sets CI), where a missing module fails the test."""
    import importlib

    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


def result_json(text: str, command: str | None = None) -> Any:
    """The result of a command's JSON output, once its envelope is checked against the
    schema every output follows."""
    import json

    document = json.loads(text)
    _envelope_validator().validate(document)
    if command is not None:
        assert document["command"] == command
    return document["result"]


@cache
def _envelope_validator() -> Any:
    """The schema compiled once for the whole session."""
    import jsonschema

    from pipesim.render.envelope import schema

    return jsonschema.Draft202012Validator(schema())

"""Shared helpers: build and simulate a problem from settings in one call."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

from pipesim import Report, Settings, run

settings.register_profile(
    "default", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("default")


def simulate_settings(**kwargs: object) -> Report:
    """Run `Settings(**kwargs)`; cost values may be given as plain numbers."""
    for key in ("forward", "backward", "weight"):
        value = kwargs.get(key)
        if isinstance(value, int | float):
            kwargs[key] = (float(value),)
        elif isinstance(value, list):
            kwargs[key] = tuple(float(v) for v in value)
    return run(Settings(**kwargs))  # type: ignore[arg-type]
